// Progressive-growing fade-in, CUDA (maths as fade_in.cpp).
//   out = alpha * high + (1 - alpha) * up(low);  d_high = alpha * g;  d_low = (1 - alpha) * sum2x2(g)
// alpha is read by the kernels from device memory when it is a CUDA tensor (no synchronisation).
// Same-size blends of one dense layout run a packed kernel (16-byte loads and stores).
#include "cuda_utils.cuh"

namespace pygan {
namespace {

using cuda::DeviceScalar;
using cuda::Pack;
using cuda::pack_size;

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

template <typename T, typename acc_t>
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
    for (int j = 0; j < V; ++j) o.v[j] = static_cast<T>(a * static_cast<acc_t>(h.v[j]) + b * static_cast<acc_t>(l.v[j]));
    reinterpret_cast<Pack<T>*>(out)[p] = o;
  }
  for (int64_t i = packs * V + int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < numel; i += stride) {
    out[i] = static_cast<T>(a * static_cast<acc_t>(high[i]) + b * static_cast<acc_t>(low[i]));
  }
}

template <typename T, typename acc_t>
__global__ void fade_in_generic(const T* __restrict__ low, Strides4 ls, const T* __restrict__ high, Strides4 hs,
                                T* __restrict__ out, Strides4 os, Index4 idx, int shift, DeviceScalar<acc_t> alpha) {
  const acc_t a = alpha.get(), b = acc_t(1) - a;
  const int64_t total = idx.N * idx.C * idx.H * idx.W, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    int64_t n, c, y, x;
    idx(i, n, c, y, x);
    const acc_t hv = high[n * hs.n + c * hs.c + y * hs.h + x * hs.w];
    const acc_t lv = low[n * ls.n + c * ls.c + (y >> shift) * ls.h + (x >> shift) * ls.w];
    out[n * os.n + c * os.c + y * os.h + x * os.w] = static_cast<T>(a * hv + b * lv);
  }
}

// One thread per low-resolution element: reads its 2x2 (or 1x1) block of g, writes d_high for the
// block and d_low for the element.
template <typename T, typename acc_t>
__global__ void fade_in_bwd_generic(const T* __restrict__ g, Strides4 gs, T* __restrict__ dh, Strides4 hs,
                                    T* __restrict__ dl, Strides4 ls, Index4 low_idx, int shift,
                                    DeviceScalar<acc_t> alpha) {
  const acc_t a = alpha.get(), b = acc_t(1) - a;
  const int64_t total = low_idx.N * low_idx.C * low_idx.H * low_idx.W, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    int64_t n, c, y, x;
    low_idx(i, n, c, y, x);
    acc_t sum = 0;
    for (int dy = 0; dy <= shift; ++dy) {
      for (int dx = 0; dx <= shift; ++dx) {
        const int64_t Y = (y << shift) + dy, X = (x << shift) + dx;
        const acc_t gv = g[n * gs.n + c * gs.c + Y * gs.h + X * gs.w];
        dh[n * hs.n + c * hs.c + Y * hs.h + X * hs.w] = static_cast<T>(a * gv);
        sum += gv;
      }
    }
    dl[n * ls.n + c * ls.c + y * ls.h + x * ls.w] = static_cast<T>(b * sum);
  }
}

at::Tensor fade_in_cuda(const at::Tensor& low, const at::Tensor& high, const at::Tensor& alpha_t) {
  TORCH_CHECK(high.dim() == 4 && low.dim() == 4 && high.is_floating_point() && low.scalar_type() == high.scalar_type(),
              "pygan::fade_in: low and high must be (N, C, H, W) tensors of one floating dtype");
  TORCH_CHECK(alpha_t.dim() == 0 && alpha_t.is_floating_point(), "pygan::fade_in: alpha must be a 0-dim float tensor");
  const int64_t N = high.size(0), C = high.size(1), H = high.size(2), W = high.size(3);
  const bool up = low.sizes() != high.sizes();
  TORCH_CHECK(!up || (low.size(0) == N && low.size(1) == C && low.size(2) * 2 == H && low.size(3) * 2 == W),
              "pygan::fade_in: low must be high's shape or half its spatial size, got ", low.sizes(), " and ", high.sizes());
  const c10::cuda::CUDAGuard guard(high.device());
  at::Tensor out = at::empty_like(high);
  if (out.numel() == 0) return out;
  PYGAN_DISPATCH_FLOATING(high.scalar_type(), "fade_in_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    at::Tensor keep;
    const auto alpha = cuda::device_scalar<acc_t>(alpha_t, keep);
    if (!up && cuda::packable({&low, &high, &out})) {
      blend_packed<scalar_t, acc_t><<<cuda::blocks_for(ceil_div(out.numel(), pack_size<scalar_t>())), cuda::kThreads, 0, cuda::stream()>>>(
          low.const_data_ptr<scalar_t>(), high.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(), out.numel(), alpha);
    } else {
      fade_in_generic<scalar_t, acc_t><<<cuda::blocks_for(out.numel()), cuda::kThreads, 0, cuda::stream()>>>(
          low.const_data_ptr<scalar_t>(), strides_of(low), high.const_data_ptr<scalar_t>(), strides_of(high),
          out.mutable_data_ptr<scalar_t>(), strides_of(out), index_for(N, C, H, W, out), up ? 1 : 0, alpha);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> fade_in_bwd_cuda(const at::Tensor& grad, const at::Tensor& alpha_t, bool upsampled) {
  TORCH_CHECK(grad.dim() == 4 && grad.is_floating_point(), "pygan::fade_in_bwd: grad must be a floating-point (N, C, H, W) tensor");
  TORCH_CHECK(alpha_t.dim() == 0 && alpha_t.is_floating_point(), "pygan::fade_in_bwd: alpha must be a 0-dim float tensor");
  const int64_t N = grad.size(0), C = grad.size(1), H = grad.size(2), W = grad.size(3);
  const int shift = upsampled ? 1 : 0;
  const c10::cuda::CUDAGuard guard(grad.device());
  at::Tensor d_high = at::empty_like(grad);
  at::Tensor d_low = empty_in_layout_of({N, C, H >> shift, W >> shift}, grad);
  if (grad.numel() == 0) return {d_low, d_high};
  PYGAN_DISPATCH_FLOATING(grad.scalar_type(), "fade_in_bwd_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    at::Tensor keep;
    const auto alpha = cuda::device_scalar<acc_t>(alpha_t, keep);
    const Index4 low_idx = index_for(N, C, H >> shift, W >> shift, d_low);
    fade_in_bwd_generic<scalar_t, acc_t><<<cuda::blocks_for(d_low.numel()), cuda::kThreads, 0, cuda::stream()>>>(
        grad.const_data_ptr<scalar_t>(), strides_of(grad), d_high.mutable_data_ptr<scalar_t>(), strides_of(d_high),
        d_low.mutable_data_ptr<scalar_t>(), strides_of(d_low), low_idx, shift, alpha);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {d_low, d_high};
}

}  // namespace

TORCH_LIBRARY_IMPL(pygan, CUDA, m) {
  m.impl("fade_in", &fade_in_cuda);
  m.impl("fade_in_bwd", &fade_in_bwd_cuda);
}

}  // namespace pygan
