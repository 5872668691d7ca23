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

// y = act_norm(x): launches the kernel that suits x's layout. x, y collapse to (N, C, S).
template <typename T, typename acc_t>
void launch_act_norm_fwd(const T* x, const NCS& xv, const T* bias, T* y, const NCS& yv, Act<acc_t> act,
                         double eps) {
  if (xv.channels_inner()) {
    act_norm_fwd_warps<T, acc_t><<<blocks_for(xv.n * xv.s, kThreads / 32), kThreads, 0, stream()>>>(
        x, xv, bias, y, yv, act, static_cast<acc_t>(eps));
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
  if (xv.channels_inner()) {
    act_norm_bwd_warps<T, acc_t><<<blocks_for(xv.n * xv.s, kThreads / 32), kThreads, 0, stream()>>>(
        g, gv, x, xv, bias, dx, dv, act, static_cast<acc_t>(eps));
  } else {
    const int64_t tiles_per_n = ceil_div(xv.s, kTilePixels), tiles = xv.n * tiles_per_n;
    act_norm_bwd_tiles<T, acc_t><<<blocks_for(tiles, 1), dim3(kTilePixels, kTileLanes), 0, stream()>>>(
        g, gv, x, xv, bias, dx, dv, act, static_cast<acc_t>(eps), tiles_per_n, tiles);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace cuda
}  // namespace pygan
