// Bias + leaky ReLU + pixel norm, CUDA: the act_norm kernels (see act_norm_cuda.cuh).
#include "act_norm_cuda.cuh"

namespace pygan {
namespace {

template <typename acc_t>
cuda::Act<acc_t> lrelu(double scale, double slope, double gain) {
  return cuda::Act<acc_t>{acc_t(scale), acc_t(gain), acc_t(gain * slope)};
}

at::Tensor bias_lrelu_pixel_norm_cuda(const at::Tensor& x_, const std::optional<at::Tensor>& bias_,
                                      double scale, double slope, double gain, double eps) {
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
  check_x_bias(x_, bias_, "bias_lrelu_pixel_norm_bwd");
  TORCH_CHECK(grad_.sizes() == x_.sizes() && grad_.scalar_type() == x_.scalar_type(),
              "pygan::bias_lrelu_pixel_norm_bwd: grad must match x in shape and dtype");
  const c10::cuda::CUDAGuard guard(x_.device());
  NCS gv, xv;
  const at::Tensor grad = ncs_input(grad_, gv), x = ncs_input(x_, xv);
  const at::Tensor bias = bias_.has_value() ? bias_->contiguous() : at::Tensor();
  NCSOutput dx(at::empty_like(grad_));
  if (x.numel() == 0) {
    return {dx.out, at::zeros({bias_grad ? x_.size(1) : 0}, x_.options())};
  }
  // With scale == 0, dx is zero and carries no dz: compute dz (scale 1) for the bias sum instead.
  const double kernel_scale = (bias_grad && scale == 0.0) ? 1.0 : scale;
  PYGAN_DISPATCH_FLOATING(x.scalar_type(), "bias_lrelu_pixel_norm_bwd_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    cuda::launch_act_norm_bwd<scalar_t, acc_t>(grad.const_data_ptr<scalar_t>(), gv, x.const_data_ptr<scalar_t>(), xv,
                                               bias.defined() ? bias.const_data_ptr<scalar_t>() : nullptr,
                                               dx.work.mutable_data_ptr<scalar_t>(), dx.v,
                                               lrelu<acc_t>(kernel_scale, slope, gain), eps);
  });
  at::Tensor out = dx.finish();
  at::Tensor db = bias_grad ? cuda::bias_grad_from_dx(out, kernel_scale) : at::empty({0}, x_.options());
  if (kernel_scale != scale) out.zero_();
  return {out, db};
}

}  // namespace

TORCH_LIBRARY_IMPL(pygan, CUDA, m) {
  m.impl("bias_lrelu_pixel_norm", &bias_lrelu_pixel_norm_cuda);
  m.impl("bias_lrelu_pixel_norm_bwd", &bias_lrelu_pixel_norm_bwd_cuda);
}

}  // namespace pygan
