// Progressive-growing fade-in, CUDA (maths as fade_in.cpp).
//   out = act(alpha * high + (1 - alpha) * up(low)), act = identity or tanh (TANH);
//   gz = g, or g * (1 - y)(1 + y) with y the forward's tanh output (TANH);
//   d_high = alpha * gz;  d_low = (1 - alpha) * sum2x2(gz)
// TANH is a template parameter: the linear kernels are the ones they were before tanh existed.
// alpha is read by the kernels from device memory when it is a CUDA tensor (no synchronisation).
// Packed kernels (16-byte loads and stores of V = pack_size<T>() elements, one pass over g in the
// backward) run where every pack start is 16-byte aligned:
//   same sizes: all tensors dense in one layout (cuda::packable), scalar tail;
//   upsampling (high's H and W even), NCHW: every tensor contiguous, W % V == 0: packs along rows;
//   upsampling, channels_last: every tensor channels_last-contiguous, C % V == 0: packs along
//     channels.
// (In the tanh backward the output y counts as one of "every tensor": it is read at g's offsets.)
// Anything else runs the generic (strided, scalar) kernels.
#include "cuda_utils.cuh"

namespace pygan {
namespace {

using cuda::DeviceScalar;
using cuda::load_pack;
using cuda::Pack;
using cuda::pack_size;
using cuda::store_pack;

struct Strides4 {
  int64_t n, c, h, w;
};

Strides4 strides_of(const at::Tensor& t) { return {t.stride(0), t.stride(1), t.stride(2), t.stride(3)}; }

// (n, c, h, w) of logical element i of an (N, C, H, W) index space; channels fastest when c_inner.
struct Index4 {
  int64_t N, C, H, W;
  bool c_inner;
  __device__ __forceinline__ void operator()(int64_t i, int64_t& n, int64_t& c, int64_t& h, int64_t& w) const {
    if (c_inner) {
      c = i % C; i /= C;
      w = i % W; i /= W;
      h = i % H; n = i / H;
    } else {
      w = i % W; i /= W;
      h = i % H; i /= H;
      c = i % C; n = i / C;
    }
  }
};

Index4 index_for(int64_t N, int64_t C, int64_t H, int64_t W, const at::Tensor& layout) {
  return Index4{N, C, H, W, C > 1 && layout.stride(1) == 1 && H * W > 1};
}

__device__ __forceinline__ float tanh_acc(float z) { return tanhf(z); }
__device__ __forceinline__ double tanh_acc(double z) { return tanh(z); }

// The forward's activation of z = alpha * high + (1 - alpha) * low.
template <bool TANH, typename acc_t>
__device__ __forceinline__ acc_t act(acc_t z) {
  if constexpr (TANH) {
    return tanh_acc(z);
  } else {
    return z;
  }
}

// The gradient of z from the gradient g of the output and the output y (read only with TANH):
// tanh'(z) = 1 - y^2, computed as (1 - y)(1 + y), exact in 1 - y where y is near 1.
template <bool TANH, typename acc_t>
__device__ __forceinline__ acc_t grad_z(acc_t g, acc_t y) {
  if constexpr (TANH) {
    return g * ((acc_t(1) - y) * (acc_t(1) + y));
  } else {
    return g;
  }
}

template <typename T, typename acc_t, bool TANH>
__global__ void blend_packed(const T* __restrict__ low, const T* __restrict__ high, T* __restrict__ out,
                             int64_t numel, DeviceScalar<acc_t> alpha) {
  constexpr int V = pack_size<T>();
  const acc_t a = alpha.get(), b = acc_t(1) - a;
  const int64_t packs = numel / V, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t p = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; p < packs; p += stride) {
    const Pack<T> l = reinterpret_cast<const Pack<T>*>(low)[p];
    const Pack<T> h = reinterpret_cast<const Pack<T>*>(high)[p];
    Pack<T> o;
#pragma unroll
    for (int j = 0; j < V; ++j) o.v[j] = static_cast<T>(act<TANH>(a * static_cast<acc_t>(h.v[j]) + b * static_cast<acc_t>(l.v[j])));
    reinterpret_cast<Pack<T>*>(out)[p] = o;
  }
  for (int64_t i = packs * V + int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < numel; i += stride) {
    out[i] = static_cast<T>(act<TANH>(a * static_cast<acc_t>(high[i]) + b * static_cast<acc_t>(low[i])));
  }
}

// The V/2 low values under one pack of an NCHW row of high: 8 bytes, moved as one uint2 by
// cuda::load_vec / store_vec, addressed in HalfPack<T> units.
template <typename T>
struct alignas(8) HalfPack {
  T v[pack_size<T>() / 2];
};

// Upsampling, dense NCHW, W % V == 0, wp = W / V packs per row. out and high are rows of W,
// row = (n*C + c)*H + y; pack p is row p / wp, columns x0 = (p % wp)*V .. x0 + V - 1. H is even,
// so low's row (n, c, y / 2) is row / 2; the low values under the pack, columns x0/2 .. x0/2 +
// V/2 - 1 of it, are half pack (row / 2)*wp + p % wp of low (a low row holds wp half packs).
template <typename T, typename acc_t, bool TANH>
__global__ void fade_in_up_rows(const T* __restrict__ low, const T* __restrict__ high, T* __restrict__ out,
                                int64_t packs, int64_t wp, DeviceScalar<acc_t> alpha) {
  constexpr int V = pack_size<T>();
  const acc_t a = alpha.get(), b = acc_t(1) - a;
  const HalfPack<T>* lp = reinterpret_cast<const HalfPack<T>*>(low);
  const Pack<T>* hp = reinterpret_cast<const Pack<T>*>(high);
  Pack<T>* op = reinterpret_cast<Pack<T>*>(out);
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t p = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; p < packs; p += stride) {
    const int64_t row = p / wp, col = p - row * wp;
    const HalfPack<T> l = cuda::load_vec(lp + (row >> 1) * wp + col);
    const Pack<T> h = load_pack(hp + p);
    Pack<T> o;
#pragma unroll
    for (int j = 0; j < V; ++j) o.v[j] = static_cast<T>(act<TANH>(a * static_cast<acc_t>(h.v[j]) + b * static_cast<acc_t>(l.v[j >> 1])));
    store_pack(op + p, o);
  }
}

// Upsampling, dense channels_last, C % V == 0, cp = C / V packs per pixel. Pack p of out and high
// is channel pack cq = p % cp of pixel q = p / cp = (n*H + y)*W + x. With t = q / W = n*H + y and
// H even, low's pixel (n, y/2, x/2) is (t / 2)*(W / 2) + x / 2: its pack cq is one pack of low.
template <typename T, typename acc_t, bool TANH>
__global__ void fade_in_up_channels(const T* __restrict__ low, const T* __restrict__ high, T* __restrict__ out,
                                    int64_t packs, int64_t cp, int64_t W, DeviceScalar<acc_t> alpha) {
  constexpr int V = pack_size<T>();
  const acc_t a = alpha.get(), b = acc_t(1) - a;
  const Pack<T>* lp = reinterpret_cast<const Pack<T>*>(low);
  const Pack<T>* hp = reinterpret_cast<const Pack<T>*>(high);
  Pack<T>* op = reinterpret_cast<Pack<T>*>(out);
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t p = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; p < packs; p += stride) {
    const int64_t q = p / cp, cq = p - q * cp, t = q / W, x = q - t * W;
    const Pack<T> l = load_pack(lp + ((t >> 1) * (W >> 1) + (x >> 1)) * cp + cq);
    const Pack<T> h = load_pack(hp + p);
    Pack<T> o;
#pragma unroll
    for (int j = 0; j < V; ++j) o.v[j] = static_cast<T>(act<TANH>(a * static_cast<acc_t>(h.v[j]) + b * static_cast<acc_t>(l.v[j])));
    store_pack(op + p, o);
  }
}

template <typename T, typename acc_t, bool TANH>
__global__ void fade_in_generic(const T* __restrict__ low, Strides4 ls, const T* __restrict__ high, Strides4 hs,
                                T* __restrict__ out, Strides4 os, Index4 idx, int shift, DeviceScalar<acc_t> alpha) {
  const acc_t a = alpha.get(), b = acc_t(1) - a;
  const int64_t total = idx.N * idx.C * idx.H * idx.W, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    int64_t n, c, y, x;
    idx(i, n, c, y, x);
    const acc_t hv = high[n * hs.n + c * hs.c + y * hs.h + x * hs.w];
    const acc_t lv = low[n * ls.n + c * ls.c + (y >> shift) * ls.h + (x >> shift) * ls.w];
    out[n * os.n + c * os.c + y * os.h + x * os.w] = static_cast<T>(act<TANH>(a * hv + b * lv));
  }
}

// One thread per low-resolution element: reads its 2x2 (or 1x1) block of g (and of y with TANH),
// writes d_high for the block and d_low for the element.
template <typename T, typename acc_t, bool TANH>
__global__ void fade_in_bwd_generic(const T* __restrict__ g, Strides4 gs, const T* __restrict__ yp, Strides4 ys,
                                    T* __restrict__ dh, Strides4 hs, T* __restrict__ dl, Strides4 ls,
                                    Index4 low_idx, int shift, DeviceScalar<acc_t> alpha) {
  const acc_t a = alpha.get(), b = acc_t(1) - a;
  const int64_t total = low_idx.N * low_idx.C * low_idx.H * low_idx.W, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    int64_t n, c, y, x;
    low_idx(i, n, c, y, x);
    acc_t sum = 0;
    for (int dy = 0; dy <= shift; ++dy) {
      for (int dx = 0; dx <= shift; ++dx) {
        const int64_t Y = (y << shift) + dy, X = (x << shift) + dx;
        acc_t yv = 0;
        if constexpr (TANH) yv = yp[n * ys.n + c * ys.c + Y * ys.h + X * ys.w];
        const acc_t gv = grad_z<TANH>(static_cast<acc_t>(g[n * gs.n + c * gs.c + Y * gs.h + X * gs.w]), yv);
        dh[n * hs.n + c * hs.c + Y * hs.h + X * hs.w] = static_cast<T>(a * gv);
        sum += gv;
      }
    }
    dl[n * ls.n + c * ls.c + y * ls.h + x * ls.w] = static_cast<T>(b * sum);
  }
}

// Same sizes, one dense layout: d_high = alpha * gz and d_low = (1 - alpha) * gz, element i of
// the four (g, y, d_high, d_low) at one offset; packs p < numel / V, then a scalar tail.
template <typename T, typename acc_t, bool TANH>
__global__ void fade_in_bwd_same_packed(const T* __restrict__ g, const T* __restrict__ y, T* __restrict__ dh,
                                        T* __restrict__ dl, int64_t numel, DeviceScalar<acc_t> alpha) {
  constexpr int V = pack_size<T>();
  const acc_t a = alpha.get(), b = acc_t(1) - a;
  const int64_t packs = numel / V, stride = int64_t(gridDim.x) * blockDim.x;
  const Pack<T>* gp = reinterpret_cast<const Pack<T>*>(g);
  const Pack<T>* yp = reinterpret_cast<const Pack<T>*>(y);
  Pack<T>* hp = reinterpret_cast<Pack<T>*>(dh);
  Pack<T>* lp = reinterpret_cast<Pack<T>*>(dl);
  for (int64_t p = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; p < packs; p += stride) {
    const Pack<T> gv = load_pack(gp + p);
    Pack<T> yv{};
    if constexpr (TANH) yv = load_pack(yp + p);
    Pack<T> h, l;
#pragma unroll
    for (int j = 0; j < V; ++j) {
      const acc_t gz = grad_z<TANH>(static_cast<acc_t>(gv.v[j]), static_cast<acc_t>(yv.v[j]));
      h.v[j] = static_cast<T>(a * gz);
      l.v[j] = static_cast<T>(b * gz);
    }
    store_pack(hp + p, h);
    store_pack(lp + p, l);
  }
  for (int64_t i = packs * V + int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < numel; i += stride) {
    acc_t yv = 0;
    if constexpr (TANH) yv = y[i];
    const acc_t gz = grad_z<TANH>(static_cast<acc_t>(g[i]), yv);
    dh[i] = static_cast<T>(a * gz);
    dl[i] = static_cast<T>(b * gz);
  }
}

// Backward of the upsampling, dense NCHW, W % V == 0, wp = W / V. Item p is half pack p of d_low:
// low row lr = p / wp (= (n*C + c)*(H/2) + y), columns (p % wp)*V/2 .. + V/2 - 1. Its 2x2 blocks
// are pack col = p % wp (columns x0 = col*V ..) of high rows 2*lr and 2*lr + 1 (H even): packs
// p0 = 2*lr*wp + col and p1 = p0 + wp of g and d_high. d_low value i sums g[row 2lr][x0 + 2i],
// [2lr][x0 + 2i + 1], [2lr + 1][x0 + 2i], [2lr + 1][x0 + 2i + 1] in that order (as the generic kernel).
// With TANH, y (the forward's output, g's layout) is read at g's packs p0 and p1.
template <typename T, typename acc_t, bool TANH>
__global__ void fade_in_bwd_up_rows(const T* __restrict__ g, const T* __restrict__ y, T* __restrict__ dh,
                                    T* __restrict__ dl, int64_t items, int64_t wp, DeviceScalar<acc_t> alpha) {
  constexpr int V = pack_size<T>();
  const acc_t a = alpha.get(), b = acc_t(1) - a;
  const Pack<T>* gp = reinterpret_cast<const Pack<T>*>(g);
  const Pack<T>* yp = reinterpret_cast<const Pack<T>*>(y);
  Pack<T>* hp = reinterpret_cast<Pack<T>*>(dh);
  HalfPack<T>* lp = reinterpret_cast<HalfPack<T>*>(dl);
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t p = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; p < items; p += stride) {
    const int64_t lr = p / wp, col = p - lr * wp, p0 = 2 * lr * wp + col, p1 = p0 + wp;
    const Pack<T> g0 = load_pack(gp + p0), g1 = load_pack(gp + p1);
    Pack<T> y0{}, y1{};
    if constexpr (TANH) {
      y0 = load_pack(yp + p0);
      y1 = load_pack(yp + p1);
    }
    acc_t z0[V], z1[V];   // gz of the two rows
    Pack<T> h0, h1;
    HalfPack<T> l;
#pragma unroll
    for (int j = 0; j < V; ++j) {
      z0[j] = grad_z<TANH>(static_cast<acc_t>(g0.v[j]), static_cast<acc_t>(y0.v[j]));
      z1[j] = grad_z<TANH>(static_cast<acc_t>(g1.v[j]), static_cast<acc_t>(y1.v[j]));
      h0.v[j] = static_cast<T>(a * z0[j]);
      h1.v[j] = static_cast<T>(a * z1[j]);
    }
#pragma unroll
    for (int i = 0; i < V / 2; ++i) {
      acc_t sum = 0;
      sum += z0[2 * i];
      sum += z0[2 * i + 1];
      sum += z1[2 * i];
      sum += z1[2 * i + 1];
      l.v[i] = static_cast<T>(b * sum);
    }
    store_pack(hp + p0, h0);
    store_pack(hp + p1, h1);
    cuda::store_vec(lp + p, l);
  }
}

// Backward of the upsampling, dense channels_last, C % V == 0, cp = C / V. Item p is pack p of
// d_low: channel pack cq = p % cp of low pixel lq = p / cp = (n*(H/2) + y)*(W/2) + x. With
// t = lq / (W/2) = n*(H/2) + y and x = lq % (W/2), its block's top-left high pixel is 2t*W + 2x
// (n*H + 2y = 2t), the others +1, +W, +W + 1; pack cq of each is pack pixel*cp + cq of g and
// d_high. The sum runs top-left, top-right, bottom-left, bottom-right (as the generic kernel).
// With TANH, y (the forward's output, g's layout) is read at g's packs q[k].
template <typename T, typename acc_t, bool TANH>
__global__ void fade_in_bwd_up_channels(const T* __restrict__ g, const T* __restrict__ y, T* __restrict__ dh,
                                        T* __restrict__ dl, int64_t items, int64_t cp, int64_t W,
                                        DeviceScalar<acc_t> alpha) {
  constexpr int V = pack_size<T>();
  const acc_t a = alpha.get(), b = acc_t(1) - a;
  const Pack<T>* gp = reinterpret_cast<const Pack<T>*>(g);
  const Pack<T>* yp = reinterpret_cast<const Pack<T>*>(y);
  Pack<T>* hp = reinterpret_cast<Pack<T>*>(dh);
  Pack<T>* lp = reinterpret_cast<Pack<T>*>(dl);
  const int64_t Wl = W >> 1, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t p = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; p < items; p += stride) {
    const int64_t lq = p / cp, cq = p - lq * cp, t = lq / Wl, x = lq - t * Wl;
    const int64_t q[4] = {(2 * t * W + 2 * x) * cp + cq, (2 * t * W + 2 * x + 1) * cp + cq,
                          (2 * t * W + W + 2 * x) * cp + cq, (2 * t * W + W + 2 * x + 1) * cp + cq};
    acc_t sum[V];
#pragma unroll
    for (int j = 0; j < V; ++j) sum[j] = 0;
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const Pack<T> gk = load_pack(gp + q[k]);
      Pack<T> yk{};
      if constexpr (TANH) yk = load_pack(yp + q[k]);
      Pack<T> h;
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const acc_t gv = grad_z<TANH>(static_cast<acc_t>(gk.v[j]), static_cast<acc_t>(yk.v[j]));
        h.v[j] = static_cast<T>(a * gv);
        sum[j] += gv;
      }
      store_pack(hp + q[k], h);
    }
    Pack<T> l;
#pragma unroll
    for (int j = 0; j < V; ++j) l.v[j] = static_cast<T>(b * sum[j]);
    store_pack(lp + p, l);
  }
}

// Every tensor contiguous (NCHW) with 16-byte aligned data, and high's W % V == 0: the row kernels.
template <typename T>
bool rows_packable(std::initializer_list<const at::Tensor*> ts, int64_t W) {
  if (W % pack_size<T>() != 0) return false;
  for (const at::Tensor* t : ts) {
    if (!t->is_contiguous() || !cuda::aligned16(t->const_data_ptr())) return false;
  }
  return true;
}

// Every tensor channels_last-contiguous with 16-byte aligned data, and C % V == 0: the channel kernels.
template <typename T>
bool channels_packable(std::initializer_list<const at::Tensor*> ts, int64_t C) {
  if (C % pack_size<T>() != 0) return false;
  for (const at::Tensor* t : ts) {
    if (!t->is_contiguous(at::MemoryFormat::ChannelsLast) || !cuda::aligned16(t->const_data_ptr())) return false;
  }
  return true;
}

// Calls f(std::integral_constant<bool, TANH>{}) with TANH = flag: one launch site per kernel for
// both activations.
template <typename F>
void with_tanh(bool flag, const F& f) {
  if (flag) {
    f(std::true_type{});
  } else {
    f(std::false_type{});
  }
}

at::Tensor fade_in_cuda(const at::Tensor& low, const at::Tensor& high, const at::Tensor& alpha_t, bool use_tanh) {
  TORCH_CHECK(high.dim() == 4 && low.dim() == 4 && high.is_floating_point() && low.scalar_type() == high.scalar_type(),
              "pygan::fade_in: low and high must be (N, C, H, W) tensors of one floating dtype");
  TORCH_CHECK(alpha_t.dim() == 0 && alpha_t.is_floating_point(), "pygan::fade_in: alpha must be a 0-dim float tensor");
  const int64_t N = high.size(0), C = high.size(1), H = high.size(2), W = high.size(3);
  const bool up = low.sizes() != high.sizes();
  TORCH_CHECK(!up || (low.size(0) == N && low.size(1) == C && low.size(2) * 2 == H && low.size(3) * 2 == W),
              "pygan::fade_in: low must be high's shape or half its spatial size, got ", low.sizes(), " and ", high.sizes());
  cuda::check_same_device("fade_in", {{"high", &high}, {"low", &low}, {"alpha", &alpha_t}}, /*cpu_scalar_ok=*/true);
  const c10::cuda::CUDAGuard guard(high.device());
  at::Tensor out = at::empty_like(high);
  if (out.numel() == 0) return out;
  PYGAN_DISPATCH_FLOATING(high.scalar_type(), "fade_in_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    at::Tensor keep;
    const auto alpha = cuda::device_scalar<acc_t>(alpha_t, keep);
    constexpr int V = pack_size<scalar_t>();
    with_tanh(use_tanh, [&](auto tanh_flag) {
      constexpr bool TANH = decltype(tanh_flag)::value;
      if (!up && cuda::packable({&low, &high, &out})) {
        blend_packed<scalar_t, acc_t, TANH><<<cuda::blocks_for(ceil_div(out.numel(), V)), cuda::kThreads, 0, cuda::stream()>>>(
            low.const_data_ptr<scalar_t>(), high.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(), out.numel(), alpha);
      } else if (up && rows_packable<scalar_t>({&low, &high, &out}, W)) {
        fade_in_up_rows<scalar_t, acc_t, TANH><<<cuda::blocks_for(out.numel() / V), cuda::kThreads, 0, cuda::stream()>>>(
            low.const_data_ptr<scalar_t>(), high.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(),
            out.numel() / V, W / V, alpha);
      } else if (up && channels_packable<scalar_t>({&low, &high, &out}, C)) {
        fade_in_up_channels<scalar_t, acc_t, TANH><<<cuda::blocks_for(out.numel() / V), cuda::kThreads, 0, cuda::stream()>>>(
            low.const_data_ptr<scalar_t>(), high.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(),
            out.numel() / V, C / V, W, alpha);
      } else {
        fade_in_generic<scalar_t, acc_t, TANH><<<cuda::blocks_for(out.numel()), cuda::kThreads, 0, cuda::stream()>>>(
            low.const_data_ptr<scalar_t>(), strides_of(low), high.const_data_ptr<scalar_t>(), strides_of(high),
            out.mutable_data_ptr<scalar_t>(), strides_of(out), index_for(N, C, H, W, out), up ? 1 : 0, alpha);
      }
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> fade_in_bwd_cuda(const at::Tensor& grad, const at::Tensor& alpha_t, bool upsampled,
                                                    const std::optional<at::Tensor>& tanh_out) {
  TORCH_CHECK(grad.dim() == 4 && grad.is_floating_point(), "pygan::fade_in_bwd: grad must be a floating-point (N, C, H, W) tensor");
  TORCH_CHECK(alpha_t.dim() == 0 && alpha_t.is_floating_point(), "pygan::fade_in_bwd: alpha must be a 0-dim float tensor");
  const bool use_tanh = tanh_out.has_value();
  TORCH_CHECK(!use_tanh || (tanh_out->sizes() == grad.sizes() && tanh_out->scalar_type() == grad.scalar_type()),
              "pygan::fade_in_bwd: tanh_out must be the forward's output, with grad's shape ", grad.sizes(),
              " and dtype; got ", use_tanh ? tanh_out->sizes() : grad.sizes());
  const int64_t N = grad.size(0), C = grad.size(1), H = grad.size(2), W = grad.size(3);
  const int shift = upsampled ? 1 : 0;
  cuda::check_same_device("fade_in_bwd", {{"grad", &grad}, {"alpha", &alpha_t}, {"tanh_out", use_tanh ? &*tanh_out : nullptr}},
                          /*cpu_scalar_ok=*/true);
  const c10::cuda::CUDAGuard guard(grad.device());
  at::Tensor d_high = at::empty_like(grad);
  at::Tensor d_low = empty_in_layout_of({N, C, H >> shift, W >> shift}, grad);
  if (grad.numel() == 0) return {d_low, d_high};
  // the tensors the packed kernels read at g's offsets: y too with tanh (without, y is g itself:
  // a stand-in that is never read)
  const at::Tensor& y = use_tanh ? *tanh_out : grad;
  PYGAN_DISPATCH_FLOATING(grad.scalar_type(), "fade_in_bwd_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    at::Tensor keep;
    const auto alpha = cuda::device_scalar<acc_t>(alpha_t, keep);
    constexpr int V = pack_size<scalar_t>();
    const scalar_t* g = grad.const_data_ptr<scalar_t>();
    const scalar_t* yp = y.const_data_ptr<scalar_t>();
    scalar_t* dh = d_high.mutable_data_ptr<scalar_t>();
    scalar_t* dl = d_low.mutable_data_ptr<scalar_t>();
    with_tanh(use_tanh, [&](auto tanh_flag) {
      constexpr bool TANH = decltype(tanh_flag)::value;
      if (!upsampled && cuda::packable({&grad, &y, &d_high, &d_low})) {
        fade_in_bwd_same_packed<scalar_t, acc_t, TANH><<<cuda::blocks_for(ceil_div(grad.numel(), V)), cuda::kThreads, 0, cuda::stream()>>>(
            g, yp, dh, dl, grad.numel(), alpha);
      } else if (upsampled && H % 2 == 0 && rows_packable<scalar_t>({&grad, &y, &d_high, &d_low}, W)) {
        const int64_t items = d_low.numel() / (V / 2);
        fade_in_bwd_up_rows<scalar_t, acc_t, TANH><<<cuda::blocks_for(items), cuda::kThreads, 0, cuda::stream()>>>(
            g, yp, dh, dl, items, W / V, alpha);
      } else if (upsampled && H % 2 == 0 && W % 2 == 0 &&
                 channels_packable<scalar_t>({&grad, &y, &d_high, &d_low}, C)) {
        const int64_t items = d_low.numel() / V;
        fade_in_bwd_up_channels<scalar_t, acc_t, TANH><<<cuda::blocks_for(items), cuda::kThreads, 0, cuda::stream()>>>(
            g, yp, dh, dl, items, C / V, W, alpha);
      } else {
        const Index4 low_idx = index_for(N, C, H >> shift, W >> shift, d_low);
        fade_in_bwd_generic<scalar_t, acc_t, TANH><<<cuda::blocks_for(d_low.numel()), cuda::kThreads, 0, cuda::stream()>>>(
            g, strides_of(grad), yp, strides_of(y), dh, strides_of(d_high), dl, strides_of(d_low), low_idx, shift, alpha);
      }
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return {d_low, d_high};
}

}  // namespace

TORCH_LIBRARY_IMPL(pygan, CUDA, m) {
  m.impl("fade_in", &fade_in_cuda);
  m.impl("fade_in_bwd", &fade_in_bwd_cuda);
}

}  // namespace pygan
