// Bias + leaky ReLU with gains, CUDA (maths as bias_lrelu.cpp).
//   y = z * (z > 0 ? gain : gain * slope),  z = x * scale + bias[c]
//   dz = g * (out > 0 ? gain : gain * slope);  dx = scale * dz;  dbias = sum dx / scale
// Dense tensors of one layout run the packed kernels (16-byte loads and stores, the channel of
// each element derived from its memory offset); any other strides run the generic kernels.
#include <ATen/ops/zeros.h>

#include "cuda_utils.cuh"

namespace pygan {
namespace {

using cuda::Pack;
using cuda::pack_size;

// Channel of the element at memory offset i of a dense NCHW (per-sample plane S) or
// channels_last tensor.
struct ChannelOf {
  int64_t C, S;
  bool channels_last;
  __device__ __forceinline__ int64_t operator()(int64_t i) const {
    return channels_last ? i % C : (i / S) % C;
  }
};

// (n, c, s) of logical element i, channels fastest when c_inner else pixels fastest.
__device__ __forceinline__ void unravel(int64_t i, const NCS& v, bool c_inner, int64_t& n, int64_t& c, int64_t& s) {
  if (c_inner) {
    c = i % v.c;
    i /= v.c;
    s = i % v.s;
    n = i / v.s;
  } else {
    s = i % v.s;
    i /= v.s;
    c = i % v.c;
    n = i / v.c;
  }
}

template <typename T, typename acc_t>
__global__ void fwd_packed(const T* __restrict__ x, const T* __restrict__ bias, T* __restrict__ y, int64_t numel,
                           ChannelOf channel, acc_t scale, acc_t pos, acc_t neg) {
  constexpr int V = pack_size<T>();
  const int64_t packs = numel / V, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t p = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; p < packs; p += stride) {
    const Pack<T> in = reinterpret_cast<const Pack<T>*>(x)[p];
    Pack<T> out;
#pragma unroll
    for (int j = 0; j < V; ++j) {
      const acc_t b = bias ? static_cast<acc_t>(bias[channel(p * V + j)]) : acc_t(0);
      const acc_t z = static_cast<acc_t>(in.v[j]) * scale + b;
      out.v[j] = static_cast<T>(z * (z > acc_t(0) ? pos : neg));
    }
    reinterpret_cast<Pack<T>*>(y)[p] = out;
  }
  for (int64_t i = packs * V + int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < numel; i += stride) {
    const acc_t b = bias ? static_cast<acc_t>(bias[channel(i)]) : acc_t(0);
    const acc_t z = static_cast<acc_t>(x[i]) * scale + b;
    y[i] = static_cast<T>(z * (z > acc_t(0) ? pos : neg));
  }
}

template <typename T, typename acc_t>
__global__ void fwd_generic(const T* __restrict__ x, NCS xv, const T* __restrict__ bias, T* __restrict__ y, NCS yv,
                            bool c_inner, acc_t scale, acc_t pos, acc_t neg) {
  const int64_t total = xv.n * xv.c * xv.s, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    int64_t n, c, s;
    unravel(i, xv, c_inner, n, c, s);
    const acc_t b = bias ? static_cast<acc_t>(bias[c]) : acc_t(0);
    const acc_t z = static_cast<acc_t>(x[n * xv.sn + c * xv.sc + s * xv.ss]) * scale + b;
    y[n * yv.sn + c * yv.sc + s * yv.ss] = static_cast<T>(z * (z > acc_t(0) ? pos : neg));
  }
}

template <typename T, typename acc_t>
__global__ void bwd_packed(const T* __restrict__ g, const T* __restrict__ o, T* __restrict__ d, int64_t numel,
                           acc_t scale, acc_t pos, acc_t neg) {
  constexpr int V = pack_size<T>();
  const int64_t packs = numel / V, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t p = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; p < packs; p += stride) {
    const Pack<T> gp = reinterpret_cast<const Pack<T>*>(g)[p];
    const Pack<T> op = reinterpret_cast<const Pack<T>*>(o)[p];
    Pack<T> out;
#pragma unroll
    for (int j = 0; j < V; ++j) {
      out.v[j] = static_cast<T>(static_cast<acc_t>(gp.v[j]) * (static_cast<acc_t>(op.v[j]) > acc_t(0) ? pos : neg) * scale);
    }
    reinterpret_cast<Pack<T>*>(d)[p] = out;
  }
  for (int64_t i = packs * V + int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < numel; i += stride) {
    d[i] = static_cast<T>(static_cast<acc_t>(g[i]) * (static_cast<acc_t>(o[i]) > acc_t(0) ? pos : neg) * scale);
  }
}

template <typename T, typename acc_t>
__global__ void bwd_generic(const T* __restrict__ g, NCS gv, const T* __restrict__ o, NCS ov, T* __restrict__ d,
                            NCS dv, bool c_inner, acc_t scale, acc_t pos, acc_t neg) {
  const int64_t total = ov.n * ov.c * ov.s, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    int64_t n, c, s;
    unravel(i, ov, c_inner, n, c, s);
    const acc_t dz = static_cast<acc_t>(g[n * gv.sn + c * gv.sc + s * gv.ss]) *
                     (static_cast<acc_t>(o[n * ov.sn + c * ov.sc + s * ov.ss]) > acc_t(0) ? pos : neg);
    d[n * dv.sn + c * dv.sc + s * dv.ss] = static_cast<T>(dz * scale);
  }
}

ChannelOf channel_of(const at::Tensor& t) {
  const int64_t C = t.size(1), S = t.numel() / std::max<int64_t>(1, t.size(0) * C);
  return ChannelOf{C, S, !t.is_contiguous()};
}

at::Tensor bias_lrelu_cuda(const at::Tensor& x_, const std::optional<at::Tensor>& bias_, double scale,
                           double slope, double gain) {
  cuda::check_same_device("bias_lrelu", {{"x", &x_}, {"bias", bias_ ? &*bias_ : nullptr}});
  check_x_bias(x_, bias_, "bias_lrelu");
  const c10::cuda::CUDAGuard guard(x_.device());
  at::Tensor y = at::empty_like(x_);
  if (x_.numel() == 0) return y;
  const at::Tensor bias = bias_.has_value() ? bias_->contiguous() : at::Tensor();
  PYGAN_DISPATCH_FLOATING(x_.scalar_type(), "bias_lrelu_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* b = bias.defined() ? bias.const_data_ptr<scalar_t>() : nullptr;
    const acc_t sc = scale, pos = gain, neg = gain * slope;
    if (cuda::packable({&x_, &y})) {
      fwd_packed<scalar_t, acc_t><<<cuda::blocks_for(ceil_div(x_.numel(), pack_size<scalar_t>())), cuda::kThreads, 0, cuda::stream()>>>(
          x_.const_data_ptr<scalar_t>(), b, y.mutable_data_ptr<scalar_t>(), x_.numel(), channel_of(x_), sc, pos, neg);
    } else {
      NCS xv;
      const at::Tensor x = ncs_input(x_, xv);
      NCSOutput out(y);
      fwd_generic<scalar_t, acc_t><<<cuda::blocks_for(x.numel()), cuda::kThreads, 0, cuda::stream()>>>(
          x.const_data_ptr<scalar_t>(), xv, b, out.work.mutable_data_ptr<scalar_t>(), out.v, xv.channels_inner(), sc, pos, neg);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      out.finish();
      return;
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return y;
}

std::tuple<at::Tensor, at::Tensor> bias_lrelu_bwd_cuda(const at::Tensor& grad_, const at::Tensor& out_,
                                                       double scale, double slope, double gain, bool bias_grad) {
  cuda::check_same_device("bias_lrelu_bwd", {{"grad", &grad_}, {"out", &out_}});
  TORCH_CHECK(grad_.sizes() == out_.sizes() && grad_.scalar_type() == out_.scalar_type(),
              "pygan::bias_lrelu_bwd: grad must match out in shape and dtype");
  check_x_bias(out_, std::nullopt, "bias_lrelu_bwd");
  const c10::cuda::CUDAGuard guard(grad_.device());
  if (cuda::wants_float_bias_grad(grad_, bias_grad) && grad_.numel() > 0) {
    auto [dx32, db] = bias_lrelu_bwd_cuda(grad_.to(at::kFloat), out_.to(at::kFloat), scale, slope, gain, true);
    return {dx32.to(grad_.scalar_type()), db.to(grad_.scalar_type())};
  }
  at::Tensor dx = at::empty_like(grad_);
  if (grad_.numel() == 0) return {dx, at::zeros({bias_grad ? grad_.size(1) : 0}, grad_.options())};
  // With scale == 0, dx is zero and carries no dz: compute dz (scale 1) for the bias sum instead.
  const double kernel_scale = (bias_grad && scale == 0.0) ? 1.0 : scale;
  PYGAN_DISPATCH_FLOATING(grad_.scalar_type(), "bias_lrelu_bwd_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const acc_t sc = kernel_scale, pos = gain, neg = gain * slope;
    if (cuda::packable({&grad_, &out_, &dx})) {
      bwd_packed<scalar_t, acc_t><<<cuda::blocks_for(ceil_div(grad_.numel(), pack_size<scalar_t>())), cuda::kThreads, 0, cuda::stream()>>>(
          grad_.const_data_ptr<scalar_t>(), out_.const_data_ptr<scalar_t>(), dx.mutable_data_ptr<scalar_t>(), grad_.numel(), sc, pos, neg);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    } else {
      NCS gv, ov;
      const at::Tensor grad = ncs_input(grad_, gv), out = ncs_input(out_, ov);
      NCSOutput d(dx);
      bwd_generic<scalar_t, acc_t><<<cuda::blocks_for(grad.numel()), cuda::kThreads, 0, cuda::stream()>>>(
          grad.const_data_ptr<scalar_t>(), gv, out.const_data_ptr<scalar_t>(), ov, d.work.mutable_data_ptr<scalar_t>(), d.v,
          ov.channels_inner(), sc, pos, neg);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      d.finish();
    }
  });
  at::Tensor db = bias_grad ? cuda::bias_grad_from_dx(dx, kernel_scale, dx.scalar_type()) : at::empty({0}, grad_.options());
  if (kernel_scale != scale) dx.zero_();
  return {dx, db};
}

}  // namespace

TORCH_LIBRARY_IMPL(pygan, CUDA, m) {
  m.impl("bias_lrelu", &bias_lrelu_cuda);
  m.impl("bias_lrelu_bwd", &bias_lrelu_bwd_cuda);
}

}  // namespace pygan
