// CUDA kernels shared by pixel_norm and bias_lrelu_pixel_norm: both compute, per pixel,
//   a = act(x * scale + bias[c]),  y = a * r,  r = rsqrt(mean_c a^2 + eps)
// with act = gain * leaky_relu (pixel_norm: scale 1, no bias, act the identity, all exact).
// Backward: da = r * g - r^3 * a * mean_c(g * a);  dz = da * act'(a);  dx = scale * dz.
//
// Two launch shapes, by layout:
//   NCHW-like (pixels contiguous): blocks of 32 pixels x 8 channel lanes; loads coalesce along
//     pixels, the per-pixel sums meet in shared memory.
//   channels_last (channels contiguous): one warp per pixel; loads coalesce along channels, the
//     sums meet in a warp shuffle.
// The write pass re-reads the pixel's inputs, which the reduction pass has just brought into cache.
//
// Each shape has a packed variant (16-byte loads and stores of V = pack_size<T>() elements) that
// the launchers pick when every pack start is 16-byte aligned: the data are aligned and every
// stride that reaches a pack start is a multiple of V elements.
//   warps, channels packed: sc == 1, C % V == 0, sn % V == 0, ss % V == 0 (also for S == 1,
//     e.g. an (N, C) latent); bias, when given, aligned too.
//   tiles, pixels packed: ss == 1, S % V == 0, sn % V == 0, sc % V == 0; a tile is 32*V pixels.
// Anything else (odd sizes, unaligned or strided views) runs the scalar kernels.
#pragma once

#include "cuda_utils.cuh"

namespace pygan {
namespace cuda {

template <typename acc_t>
struct Act {
  acc_t scale, pos, neg;
  __device__ __forceinline__ acc_t operator()(acc_t x, acc_t b) const {
    const acc_t z = x * scale + b;
    return z * (z > acc_t(0) ? pos : neg);
  }
  __device__ __forceinline__ acc_t slope_of(acc_t a) const { return a > acc_t(0) ? pos : neg; }
};

template <typename T, typename acc_t>
__device__ __forceinline__ acc_t bias_at(const T* bias, int64_t c) {
  return bias ? static_cast<acc_t>(bias[c]) : acc_t(0);
}

constexpr int kTilePixels = 32, kTileLanes = 8;

template <typename T, typename acc_t>
__global__ void act_norm_fwd_tiles(const T* __restrict__ x, NCS xv, const T* __restrict__ bias,
                                   T* __restrict__ y, NCS yv, Act<acc_t> act, acc_t eps,
                                   int64_t tiles_per_n, int64_t tiles) {
  __shared__ acc_t red[kTileLanes][kTilePixels + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t C = xv.c;
  for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x) {
    const int64_t n = t / tiles_per_n, s = (t % tiles_per_n) * kTilePixels + tx;
    const bool valid = s < xv.s;
    acc_t sum = 0;
    if (valid) {
      const T* xp = x + n * xv.sn + s * xv.ss;
      for (int64_t c = ty; c < C; c += kTileLanes) {
        const acc_t a = act(static_cast<acc_t>(xp[c * xv.sc]), bias_at<T, acc_t>(bias, c));
        sum += a * a;
      }
    }
    red[ty][tx] = sum;
    __syncthreads();
    if (ty == 0) {
      acc_t total = 0;
#pragma unroll
      for (int k = 0; k < kTileLanes; ++k) total += red[k][tx];
      red[0][tx] = rsqrt_acc(total / acc_t(C) + eps);
    }
    __syncthreads();
    const acc_t r = red[0][tx];
    if (valid) {
      const T* xp = x + n * xv.sn + s * xv.ss;
      T* yp = y + n * yv.sn + s * yv.ss;
      for (int64_t c = ty; c < C; c += kTileLanes) {
        yp[c * yv.sc] = static_cast<T>(act(static_cast<acc_t>(xp[c * xv.sc]), bias_at<T, acc_t>(bias, c)) * r);
      }
    }
    __syncthreads();
  }
}

template <typename T, typename acc_t>
__global__ void act_norm_fwd_warps(const T* __restrict__ x, NCS xv, const T* __restrict__ bias,
                                   T* __restrict__ y, NCS yv, Act<acc_t> act, acc_t eps) {
  const int lane = threadIdx.x & 31;
  const int64_t pixels = xv.n * xv.s, C = xv.c;
  const int64_t warps = (int64_t(gridDim.x) * blockDim.x) >> 5;
  for (int64_t p = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5; p < pixels; p += warps) {
    const int64_t n = p / xv.s, s = p % xv.s;
    const T* xp = x + n * xv.sn + s * xv.ss;
    acc_t sum = 0;
    for (int64_t c = lane; c < C; c += 32) {
      const acc_t a = act(static_cast<acc_t>(xp[c * xv.sc]), bias_at<T, acc_t>(bias, c));
      sum += a * a;
    }
    const acc_t r = rsqrt_acc(warp_sum(sum) / acc_t(C) + eps);
    T* yp = y + n * yv.sn + s * yv.ss;
    for (int64_t c = lane; c < C; c += 32) {
      yp[c * yv.sc] = static_cast<T>(act(static_cast<acc_t>(xp[c * xv.sc]), bias_at<T, acc_t>(bias, c)) * r);
    }
  }
}

template <typename T, typename acc_t>
__global__ void act_norm_bwd_tiles(const T* __restrict__ g, NCS gv, const T* __restrict__ x, NCS xv,
                                   const T* __restrict__ bias, T* __restrict__ dx, NCS dv,
                                   Act<acc_t> act, acc_t eps, int64_t tiles_per_n, int64_t tiles) {
  __shared__ acc_t red[2][kTileLanes][kTilePixels + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t C = xv.c;
  for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x) {
    const int64_t n = t / tiles_per_n, s = (t % tiles_per_n) * kTilePixels + tx;
    const bool valid = s < xv.s;
    acc_t aa = 0, ga = 0;
    if (valid) {
      const T* xp = x + n * xv.sn + s * xv.ss;
      const T* gp = g + n * gv.sn + s * gv.ss;
      for (int64_t c = ty; c < C; c += kTileLanes) {
        const acc_t a = act(static_cast<acc_t>(xp[c * xv.sc]), bias_at<T, acc_t>(bias, c));
        aa += a * a;
        ga += static_cast<acc_t>(gp[c * gv.sc]) * a;
      }
    }
    red[0][ty][tx] = aa;
    red[1][ty][tx] = ga;
    __syncthreads();
    if (ty == 0) {
      acc_t taa = 0, tga = 0;
#pragma unroll
      for (int k = 0; k < kTileLanes; ++k) {
        taa += red[0][k][tx];
        tga += red[1][k][tx];
      }
      const acc_t r = rsqrt_acc(taa / acc_t(C) + eps);
      red[0][0][tx] = r;
      red[1][0][tx] = r * r * r * tga / acc_t(C);
    }
    __syncthreads();
    const acc_t r = red[0][0][tx], k3 = red[1][0][tx];
    if (valid) {
      const T* xp = x + n * xv.sn + s * xv.ss;
      const T* gp = g + n * gv.sn + s * gv.ss;
      T* dp = dx + n * dv.sn + s * dv.ss;
      for (int64_t c = ty; c < C; c += kTileLanes) {
        const acc_t a = act(static_cast<acc_t>(xp[c * xv.sc]), bias_at<T, acc_t>(bias, c));
        const acc_t dz = (r * static_cast<acc_t>(gp[c * gv.sc]) - k3 * a) * act.slope_of(a);
        dp[c * dv.sc] = static_cast<T>(dz * act.scale);
      }
    }
    __syncthreads();
  }
}

template <typename T, typename acc_t>
__global__ void act_norm_bwd_warps(const T* __restrict__ g, NCS gv, const T* __restrict__ x, NCS xv,
                                   const T* __restrict__ bias, T* __restrict__ dx, NCS dv,
                                   Act<acc_t> act, acc_t eps) {
  const int lane = threadIdx.x & 31;
  const int64_t pixels = xv.n * xv.s, C = xv.c;
  const int64_t warps = (int64_t(gridDim.x) * blockDim.x) >> 5;
  for (int64_t p = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5; p < pixels; p += warps) {
    const int64_t n = p / xv.s, s = p % xv.s;
    const T* xp = x + n * xv.sn + s * xv.ss;
    const T* gp = g + n * gv.sn + s * gv.ss;
    acc_t aa = 0, ga = 0;
    for (int64_t c = lane; c < C; c += 32) {
      const acc_t a = act(static_cast<acc_t>(xp[c * xv.sc]), bias_at<T, acc_t>(bias, c));
      aa += a * a;
      ga += static_cast<acc_t>(gp[c * gv.sc]) * a;
    }
    const acc_t r = rsqrt_acc(warp_sum(aa) / acc_t(C) + eps);
    const acc_t k3 = r * r * r * warp_sum(ga) / acc_t(C);
    T* dp = dx + n * dv.sn + s * dv.ss;
    for (int64_t c = lane; c < C; c += 32) {
      const acc_t a = act(static_cast<acc_t>(xp[c * xv.sc]), bias_at<T, acc_t>(bias, c));
      const acc_t dz = (r * static_cast<acc_t>(gp[c * gv.sc]) - k3 * a) * act.slope_of(a);
      dp[c * dv.sc] = static_cast<T>(dz * act.scale);
    }
  }
}

// a[j] = act(in.v[j], bias[q*V + j]): channel pack q of a pixel (bias as packs, may be null).
template <typename T, typename acc_t>
__device__ __forceinline__ void act_pack(const Pack<T>& in, const Pack<T>* __restrict__ bias, int64_t q,
                                         const Act<acc_t>& act, acc_t (&a)[pack_size<T>()]) {
  constexpr int V = pack_size<T>();
  if (bias) {
    const Pack<T> b = load_pack(bias + q);
#pragma unroll
    for (int j = 0; j < V; ++j) a[j] = act(static_cast<acc_t>(in.v[j]), static_cast<acc_t>(b.v[j]));
  } else {
#pragma unroll
    for (int j = 0; j < V; ++j) a[j] = act(static_cast<acc_t>(in.v[j]), acc_t(0));
  }
}

// One warp per pixel p = (n, s), channels packed: lane l owns packs q = l, l + 32, ... < C / V,
// i.e. channels c = q*V + j (j < V) at x[n*sn + s*ss + c] (sc == 1), bias pack q.
template <typename T, typename acc_t>
__global__ void act_norm_fwd_warps_packed(const T* __restrict__ x, NCS xv, const T* __restrict__ bias,
                                          T* __restrict__ y, NCS yv, Act<acc_t> act, acc_t eps) {
  constexpr int V = pack_size<T>();
  const int lane = threadIdx.x & 31;
  const int64_t pixels = xv.n * xv.s, C = xv.c, packs = C / V;
  const int64_t warps = (int64_t(gridDim.x) * blockDim.x) >> 5;
  const Pack<T>* bp = reinterpret_cast<const Pack<T>*>(bias);
  for (int64_t p = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5; p < pixels; p += warps) {
    const int64_t n = p / xv.s, s = p % xv.s;
    const Pack<T>* xp = reinterpret_cast<const Pack<T>*>(x + n * xv.sn + s * xv.ss);
    acc_t sum = 0;
    for (int64_t q = lane; q < packs; q += 32) {
      acc_t a[V];
      act_pack(load_pack(xp + q), bp, q, act, a);
#pragma unroll
      for (int j = 0; j < V; ++j) sum += a[j] * a[j];
    }
    const acc_t r = rsqrt_acc(warp_sum(sum) / acc_t(C) + eps);
    Pack<T>* yp = reinterpret_cast<Pack<T>*>(y + n * yv.sn + s * yv.ss);
    for (int64_t q = lane; q < packs; q += 32) {
      acc_t a[V];
      act_pack(load_pack(xp + q), bp, q, act, a);
      Pack<T> o;
#pragma unroll
      for (int j = 0; j < V; ++j) o.v[j] = static_cast<T>(a[j] * r);
      store_pack(yp + q, o);
    }
  }
}

// The backward of act_norm_fwd_warps_packed: same mapping for g, x and dx.
template <typename T, typename acc_t>
__global__ void act_norm_bwd_warps_packed(const T* __restrict__ g, NCS gv, const T* __restrict__ x, NCS xv,
                                          const T* __restrict__ bias, T* __restrict__ dx, NCS dv,
                                          Act<acc_t> act, acc_t eps) {
  constexpr int V = pack_size<T>();
  const int lane = threadIdx.x & 31;
  const int64_t pixels = xv.n * xv.s, C = xv.c, packs = C / V;
  const int64_t warps = (int64_t(gridDim.x) * blockDim.x) >> 5;
  const Pack<T>* bp = reinterpret_cast<const Pack<T>*>(bias);
  for (int64_t p = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5; p < pixels; p += warps) {
    const int64_t n = p / xv.s, s = p % xv.s;
    const Pack<T>* xp = reinterpret_cast<const Pack<T>*>(x + n * xv.sn + s * xv.ss);
    const Pack<T>* gp = reinterpret_cast<const Pack<T>*>(g + n * gv.sn + s * gv.ss);
    acc_t aa = 0, ga = 0;
    for (int64_t q = lane; q < packs; q += 32) {
      acc_t a[V];
      act_pack(load_pack(xp + q), bp, q, act, a);
      const Pack<T> gq = load_pack(gp + q);
#pragma unroll
      for (int j = 0; j < V; ++j) {
        aa += a[j] * a[j];
        ga += static_cast<acc_t>(gq.v[j]) * a[j];
      }
    }
    const acc_t r = rsqrt_acc(warp_sum(aa) / acc_t(C) + eps);
    const acc_t k3 = r * r * r * warp_sum(ga) / acc_t(C);
    Pack<T>* dp = reinterpret_cast<Pack<T>*>(dx + n * dv.sn + s * dv.ss);
    for (int64_t q = lane; q < packs; q += 32) {
      acc_t a[V];
      act_pack(load_pack(xp + q), bp, q, act, a);
      const Pack<T> gq = load_pack(gp + q);
      Pack<T> o;
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const acc_t dz = (r * static_cast<acc_t>(gq.v[j]) - k3 * a[j]) * act.slope_of(a[j]);
        o.v[j] = static_cast<T>(dz * act.scale);
      }
      store_pack(dp + q, o);
    }
  }
}

// Tiles of 32*V pixels x 8 channel lanes, pixels packed: tile t is sample n = t / tiles_per_n and
// pixel packs sp = (t % tiles_per_n) * 32 + tx < S / V; thread (tx, ty) owns pixels sp*V + j
// (j < V), loaded as one pack x[n*sn + c*sc + sp*V] (ss == 1) per channel c = ty, ty + 8, ...
// The partial sums of pixel sp*V + j meet in red[ty][j][tx]; thread k = ty*32 + tx < 32*V
// reduces pixel (j, i) = (k / 32, k % 32) over the 8 lanes into red[0][j][i].
template <typename T, typename acc_t>
__global__ void act_norm_fwd_tiles_packed(const T* __restrict__ x, NCS xv, const T* __restrict__ bias,
                                          T* __restrict__ y, NCS yv, Act<acc_t> act, acc_t eps,
                                          int64_t tiles_per_n, int64_t tiles) {
  constexpr int V = pack_size<T>();
  __shared__ acc_t red[kTileLanes][V][kTilePixels];
  const int tx = threadIdx.x, ty = threadIdx.y, k = ty * kTilePixels + tx;
  const int64_t C = xv.c, spacks = xv.s / V, xsc = xv.sc / V, ysc = yv.sc / V;
  for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x) {
    const int64_t n = t / tiles_per_n, sp = (t % tiles_per_n) * kTilePixels + tx;
    const bool valid = sp < spacks;
    acc_t sum[V];
#pragma unroll
    for (int j = 0; j < V; ++j) sum[j] = 0;
    if (valid) {
      const Pack<T>* xp = reinterpret_cast<const Pack<T>*>(x + n * xv.sn) + sp;
      for (int64_t c = ty; c < C; c += kTileLanes) {
        const Pack<T> in = load_pack(xp + c * xsc);
        const acc_t b = bias_at<T, acc_t>(bias, c);
#pragma unroll
        for (int j = 0; j < V; ++j) {
          const acc_t a = act(static_cast<acc_t>(in.v[j]), b);
          sum[j] += a * a;
        }
      }
    }
#pragma unroll
    for (int j = 0; j < V; ++j) red[ty][j][tx] = sum[j];
    __syncthreads();
    if (k < kTilePixels * V) {
      const int j = k / kTilePixels, i = k % kTilePixels;
      acc_t total = 0;
#pragma unroll
      for (int l = 0; l < kTileLanes; ++l) total += red[l][j][i];
      red[0][j][i] = rsqrt_acc(total / acc_t(C) + eps);
    }
    __syncthreads();
    if (valid) {
      acc_t r[V];
#pragma unroll
      for (int j = 0; j < V; ++j) r[j] = red[0][j][tx];
      const Pack<T>* xp = reinterpret_cast<const Pack<T>*>(x + n * xv.sn) + sp;
      Pack<T>* yp = reinterpret_cast<Pack<T>*>(y + n * yv.sn) + sp;
      for (int64_t c = ty; c < C; c += kTileLanes) {
        const Pack<T> in = load_pack(xp + c * xsc);
        const acc_t b = bias_at<T, acc_t>(bias, c);
        Pack<T> o;
#pragma unroll
        for (int j = 0; j < V; ++j) o.v[j] = static_cast<T>(act(static_cast<acc_t>(in.v[j]), b) * r[j]);
        store_pack(yp + c * ysc, o);
      }
    }
    __syncthreads();
  }
}

// The backward of act_norm_fwd_tiles_packed: same mapping for g, x and dx; red[0] carries the
// sums of a^2 and then r, red[1] those of g*a and then r^3 * mean(g*a).
template <typename T, typename acc_t>
__global__ void act_norm_bwd_tiles_packed(const T* __restrict__ g, NCS gv, const T* __restrict__ x, NCS xv,
                                          const T* __restrict__ bias, T* __restrict__ dx, NCS dv,
                                          Act<acc_t> act, acc_t eps, int64_t tiles_per_n, int64_t tiles) {
  constexpr int V = pack_size<T>();
  __shared__ acc_t red[2][kTileLanes][V][kTilePixels];
  const int tx = threadIdx.x, ty = threadIdx.y, k = ty * kTilePixels + tx;
  const int64_t C = xv.c, spacks = xv.s / V, xsc = xv.sc / V, gsc = gv.sc / V, dsc = dv.sc / V;
  for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x) {
    const int64_t n = t / tiles_per_n, sp = (t % tiles_per_n) * kTilePixels + tx;
    const bool valid = sp < spacks;
    acc_t aa[V], ga[V];
#pragma unroll
    for (int j = 0; j < V; ++j) aa[j] = ga[j] = 0;
    if (valid) {
      const Pack<T>* xp = reinterpret_cast<const Pack<T>*>(x + n * xv.sn) + sp;
      const Pack<T>* gp = reinterpret_cast<const Pack<T>*>(g + n * gv.sn) + sp;
      for (int64_t c = ty; c < C; c += kTileLanes) {
        const Pack<T> in = load_pack(xp + c * xsc);
        const Pack<T> gc = load_pack(gp + c * gsc);
        const acc_t b = bias_at<T, acc_t>(bias, c);
#pragma unroll
        for (int j = 0; j < V; ++j) {
          const acc_t a = act(static_cast<acc_t>(in.v[j]), b);
          aa[j] += a * a;
          ga[j] += static_cast<acc_t>(gc.v[j]) * a;
        }
      }
    }
#pragma unroll
    for (int j = 0; j < V; ++j) {
      red[0][ty][j][tx] = aa[j];
      red[1][ty][j][tx] = ga[j];
    }
    __syncthreads();
    if (k < kTilePixels * V) {
      const int j = k / kTilePixels, i = k % kTilePixels;
      acc_t taa = 0, tga = 0;
#pragma unroll
      for (int l = 0; l < kTileLanes; ++l) {
        taa += red[0][l][j][i];
        tga += red[1][l][j][i];
      }
      const acc_t r = rsqrt_acc(taa / acc_t(C) + eps);
      red[0][0][j][i] = r;
      red[1][0][j][i] = r * r * r * tga / acc_t(C);
    }
    __syncthreads();
    if (valid) {
      acc_t r[V], k3[V];
#pragma unroll
      for (int j = 0; j < V; ++j) {
        r[j] = red[0][0][j][tx];
        k3[j] = red[1][0][j][tx];
      }
      const Pack<T>* xp = reinterpret_cast<const Pack<T>*>(x + n * xv.sn) + sp;
      const Pack<T>* gp = reinterpret_cast<const Pack<T>*>(g + n * gv.sn) + sp;
      Pack<T>* dp = reinterpret_cast<Pack<T>*>(dx + n * dv.sn) + sp;
      for (int64_t c = ty; c < C; c += kTileLanes) {
        const Pack<T> in = load_pack(xp + c * xsc);
        const Pack<T> gc = load_pack(gp + c * gsc);
        const acc_t b = bias_at<T, acc_t>(bias, c);
        Pack<T> o;
#pragma unroll
        for (int j = 0; j < V; ++j) {
          const acc_t a = act(static_cast<acc_t>(in.v[j]), b);
          const acc_t dz = (r[j] * static_cast<acc_t>(gc.v[j]) - k3[j] * a) * act.slope_of(a);
          o.v[j] = static_cast<T>(dz * act.scale);
        }
        store_pack(dp + c * dsc, o);
      }
    }
    __syncthreads();
  }
}

// The layout rules of the packed kernels (header comment), for one (N, C, S) view and its data.
template <typename T>
bool channel_packs(const NCS& v, const void* data) {
  constexpr int V = pack_size<T>();
  return v.sc == 1 && v.c % V == 0 && v.sn % V == 0 && v.ss % V == 0 && aligned16(data);
}

template <typename T>
bool pixel_packs(const NCS& v, const void* data) {
  constexpr int V = pack_size<T>();
  return v.ss == 1 && v.s % V == 0 && v.sn % V == 0 && v.sc % V == 0 && aligned16(data);
}

// y = act_norm(x): launches the kernel that suits x's layout. x, y collapse to (N, C, S).
template <typename T, typename acc_t>
void launch_act_norm_fwd(const T* x, const NCS& xv, const T* bias, T* y, const NCS& yv, Act<acc_t> act,
                         double eps) {
  constexpr int V = pack_size<T>();
  if ((xv.channels_inner() || xv.s == 1) && (!bias || aligned16(bias)) && channel_packs<T>(xv, x) &&
      channel_packs<T>(yv, y)) {
    act_norm_fwd_warps_packed<T, acc_t><<<blocks_for(xv.n * xv.s, kThreads / 32), kThreads, 0, stream()>>>(
        x, xv, bias, y, yv, act, static_cast<acc_t>(eps));
  } else if (xv.channels_inner()) {
    act_norm_fwd_warps<T, acc_t><<<blocks_for(xv.n * xv.s, kThreads / 32), kThreads, 0, stream()>>>(
        x, xv, bias, y, yv, act, static_cast<acc_t>(eps));
  } else if (pixel_packs<T>(xv, x) && pixel_packs<T>(yv, y)) {
    const int64_t tiles_per_n = ceil_div(xv.s / V, kTilePixels), tiles = xv.n * tiles_per_n;
    act_norm_fwd_tiles_packed<T, acc_t><<<blocks_for(tiles, 1), dim3(kTilePixels, kTileLanes), 0, stream()>>>(
        x, xv, bias, y, yv, act, static_cast<acc_t>(eps), tiles_per_n, tiles);
  } else {
    const int64_t tiles_per_n = ceil_div(xv.s, kTilePixels), tiles = xv.n * tiles_per_n;
    act_norm_fwd_tiles<T, acc_t><<<blocks_for(tiles, 1), dim3(kTilePixels, kTileLanes), 0, stream()>>>(
        x, xv, bias, y, yv, act, static_cast<acc_t>(eps), tiles_per_n, tiles);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// dx = d act_norm(x) / dx applied to g.
template <typename T, typename acc_t>
void launch_act_norm_bwd(const T* g, const NCS& gv, const T* x, const NCS& xv, const T* bias, T* dx,
                         const NCS& dv, Act<acc_t> act, double eps) {
  constexpr int V = pack_size<T>();
  if ((xv.channels_inner() || xv.s == 1) && (!bias || aligned16(bias)) && channel_packs<T>(gv, g) &&
      channel_packs<T>(xv, x) && channel_packs<T>(dv, dx)) {
    act_norm_bwd_warps_packed<T, acc_t><<<blocks_for(xv.n * xv.s, kThreads / 32), kThreads, 0, stream()>>>(
        g, gv, x, xv, bias, dx, dv, act, static_cast<acc_t>(eps));
  } else if (xv.channels_inner()) {
    act_norm_bwd_warps<T, acc_t><<<blocks_for(xv.n * xv.s, kThreads / 32), kThreads, 0, stream()>>>(
        g, gv, x, xv, bias, dx, dv, act, static_cast<acc_t>(eps));
  } else if (pixel_packs<T>(gv, g) && pixel_packs<T>(xv, x) && pixel_packs<T>(dv, dx)) {
    const int64_t tiles_per_n = ceil_div(xv.s / V, kTilePixels), tiles = xv.n * tiles_per_n;
    act_norm_bwd_tiles_packed<T, acc_t><<<blocks_for(tiles, 1), dim3(kTilePixels, kTileLanes), 0, stream()>>>(
        g, gv, x, xv, bias, dx, dv, act, static_cast<acc_t>(eps), tiles_per_n, tiles);
  } else {
    const int64_t tiles_per_n = ceil_div(xv.s, kTilePixels), tiles = xv.n * tiles_per_n;
    act_norm_bwd_tiles<T, acc_t><<<blocks_for(tiles, 1), dim3(kTilePixels, kTileLanes), 0, stream()>>>(
        g, gv, x, xv, bias, dx, dv, act, static_cast<acc_t>(eps), tiles_per_n, tiles);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace cuda
}  // namespace pygan
