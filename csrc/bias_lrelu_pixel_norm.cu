// Bias + leaky ReLU + pixel norm, CUDA: the act_norm kernels (see act_norm_cuda.cuh).
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>

#include "act_norm_cuda.cuh"

namespace pygan {
namespace {

template <typename acc_t>
cuda::Act<acc_t> lrelu(double scale, double slope, double gain) {
  return cuda::Act<acc_t>{acc_t(scale), acc_t(gain), acc_t(gain * slope)};
}

at::Tensor bias_lrelu_pixel_norm_cuda(const at::Tensor& x_, const std::optional<at::Tensor>& bias_,
                                      double scale, double slope, double gain, double eps) {
  cuda::check_same_device("bias_lrelu_pixel_norm", {{"x", &x_}, {"bias", bias_ ? &*bias_ : nullptr}});
  check_x_bias(x_, bias_, "bias_lrelu_pixel_norm");
  const c10::cuda::CUDAGuard guard(x_.device());
  NCS xv;
  const at::Tensor x = ncs_input(x_, xv);
  const at::Tensor bias = bias_.has_value() ? bias_->contiguous() : at::Tensor();
  NCSOutput y(at::empty_like(x_));
  if (x.numel() == 0) return y.out;
  PYGAN_DISPATCH_FLOATING(x.scalar_type(), "bias_lrelu_pixel_norm_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    cuda::launch_act_norm_fwd<scalar_t, acc_t>(x.const_data_ptr<scalar_t>(), xv,
                                               bias.defined() ? bias.const_data_ptr<scalar_t>() : nullptr,
                                               y.work.mutable_data_ptr<scalar_t>(), y.v,
                                               lrelu<acc_t>(scale, slope, gain), eps);
  });
  return y.finish();
}

std::tuple<at::Tensor, at::Tensor> bias_lrelu_pixel_norm_bwd_cuda(
    const at::Tensor& grad_, const at::Tensor& x_, const std::optional<at::Tensor>& bias_, double scale,
    double slope, double gain, double eps, bool bias_grad) {
  cuda::check_same_device("bias_lrelu_pixel_norm_bwd",
                          {{"grad", &grad_}, {"x", &x_}, {"bias", bias_ ? &*bias_ : nullptr}});
  check_x_bias(x_, bias_, "bias_lrelu_pixel_norm_bwd");
  TORCH_CHECK(grad_.sizes() == x_.sizes() && grad_.scalar_type() == x_.scalar_type(),
              "pygan::bias_lrelu_pixel_norm_bwd: grad must match x in shape and dtype");
  const c10::cuda::CUDAGuard guard(x_.device());
  if (cuda::wants_float_bias_grad(x_, bias_grad) && x_.numel() > 0) {
    const std::optional<at::Tensor> bias32 =
        bias_.has_value() ? std::optional<at::Tensor>(bias_->to(at::kFloat)) : std::nullopt;
    auto [dx32, db] = bias_lrelu_pixel_norm_bwd_cuda(grad_.to(at::kFloat), x_.to(at::kFloat), bias32, scale, slope,
                                                     gain, eps, true);
    return {dx32.to(x_.scalar_type()), db.to(x_.scalar_type())};
  }
  // With scale == 0 the activation sees z = bias[c] whatever x is, and dx = 0 carries no dz: for
  // the bias sum, run the kernel with scale 1 on x = 0 (the same z = 0 * 1 + bias[c]), so that
  // its dx is dz, then zero dx.
  const double kernel_scale = (bias_grad && scale == 0.0) ? 1.0 : scale;
  NCS gv, xv;
  const at::Tensor grad = ncs_input(grad_, gv);
  const at::Tensor x = ncs_input(kernel_scale != scale ? at::zeros_like(x_) : x_, xv);
  const at::Tensor bias = bias_.has_value() ? bias_->contiguous() : at::Tensor();
  NCSOutput dx(at::empty_like(grad_));
  if (x.numel() == 0) {
    return {dx.out, at::zeros({bias_grad ? x_.size(1) : 0}, x_.options())};
  }
  PYGAN_DISPATCH_FLOATING(x.scalar_type(), "bias_lrelu_pixel_norm_bwd_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    cuda::launch_act_norm_bwd<scalar_t, acc_t>(grad.const_data_ptr<scalar_t>(), gv, x.const_data_ptr<scalar_t>(), xv,
                                               bias.defined() ? bias.const_data_ptr<scalar_t>() : nullptr,
                                               dx.work.mutable_data_ptr<scalar_t>(), dx.v,
                                               lrelu<acc_t>(kernel_scale, slope, gain), eps);
  });
  at::Tensor out = dx.finish();
  at::Tensor db = bias_grad ? cuda::bias_grad_from_dx(out, kernel_scale, out.scalar_type()) : at::empty({0}, x_.options());
  if (kernel_scale != scale) out.zero_();
  return {out, db};
}

}  // namespace

TORCH_LIBRARY_IMPL(pygan, CUDA, m) {
  m.impl("bias_lrelu_pixel_norm", &bias_lrelu_pixel_norm_cuda);
  m.impl("bias_lrelu_pixel_norm_bwd", &bias_lrelu_pixel_norm_bwd_cuda);
}

}  // namespace pygan
