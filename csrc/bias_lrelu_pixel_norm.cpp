// Bias + leaky ReLU + pixel norm, CPU: the act_norm kernels (see act_norm_cpu.h).
#include "act_norm_cpu.h"
#include "output_cache.h"

namespace pygan {
namespace {

at::Tensor bias_lrelu_pixel_norm_cpu(const at::Tensor& x_, const std::optional<at::Tensor>& bias_,
                                     double scale, double slope, double gain, double eps) {
  check_x_bias(x_, bias_, "bias_lrelu_pixel_norm");
  NCS xv;
  const at::Tensor x = ncs_input(x_, xv);
  const at::Tensor bias = bias_.has_value() ? bias_->contiguous() : at::Tensor();
  NCSOutput y(output_like(x_));
  if (x.numel() == 0) return y.out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "bias_lrelu_pixel_norm", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    cpu::act_norm_kernel<scalar_t>(x.const_data_ptr<scalar_t>(), xv,
                           bias.defined() ? bias.const_data_ptr<scalar_t>() : nullptr,
                           y.work.mutable_data_ptr<scalar_t>(), y.v,
                           cpu::Act<acc_t>(scale, slope, gain), eps);
  });
  return y.finish();
}

std::tuple<at::Tensor, at::Tensor> bias_lrelu_pixel_norm_bwd_cpu(
    const at::Tensor& grad_, const at::Tensor& x_, const std::optional<at::Tensor>& bias_,
    double scale, double slope, double gain, double eps, bool bias_grad) {
  check_x_bias(x_, bias_, "bias_lrelu_pixel_norm_bwd");
  TORCH_CHECK(grad_.sizes() == x_.sizes() && grad_.scalar_type() == x_.scalar_type(),
              "pygan::bias_lrelu_pixel_norm_bwd: grad must match x in shape and dtype");
  NCS gv, xv;
  const at::Tensor grad = ncs_input(grad_, gv), x = ncs_input(x_, xv);
  const at::Tensor bias = bias_.has_value() ? bias_->contiguous() : at::Tensor();
  NCSOutput dx(output_like(grad_));
  at::Tensor db = at::empty({bias_grad ? x_.size(1) : 0}, x_.options());
  if (x.numel() == 0) {
    db.zero_();
    return {dx.out, db};
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "bias_lrelu_pixel_norm_bwd", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    cpu::act_norm_bwd_kernel<scalar_t>(grad.const_data_ptr<scalar_t>(), gv, x.const_data_ptr<scalar_t>(), xv,
                               bias.defined() ? bias.const_data_ptr<scalar_t>() : nullptr,
                               dx.work.mutable_data_ptr<scalar_t>(), dx.v,
                               bias_grad ? db.mutable_data_ptr<scalar_t>() : nullptr,
                               cpu::Act<acc_t>(scale, slope, gain), eps);
  });
  return {dx.finish(), db};
}

}  // namespace

TORCH_LIBRARY_IMPL(pygan, CPU, m) {
  m.impl("bias_lrelu_pixel_norm", &bias_lrelu_pixel_norm_cpu);
  m.impl("bias_lrelu_pixel_norm_bwd", &bias_lrelu_pixel_norm_bwd_cpu);
}

}  // namespace pygan
