// Pixel norm, CPU: the act_norm kernels with the identity activation (see act_norm_cpu.h).
//   y = x * r,  r = rsqrt(mean_c x^2 + eps);   dx = r * g - r^3 * x * mean_c(g * x)
#include "act_norm_cpu.h"
#include "output_cache.h"

namespace pygan {
namespace {

void check_pixel_norm_input(const at::Tensor& x, const char* name) {
  TORCH_CHECK(x.dim() >= 2, "pygan::pixel_norm: ", name, " must be (N, C, *spatial), got ",
              x.sizes());
  TORCH_CHECK(x.is_floating_point(), "pygan::pixel_norm: ", name, " must be floating point");
}

at::Tensor pixel_norm_cpu(const at::Tensor& x_, double eps) {
  check_pixel_norm_input(x_, "x");
  NCS xv;
  const at::Tensor x = ncs_input(x_, xv);
  NCSOutput y(output_like(x_));
  if (x.numel() == 0) return y.out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "pixel_norm", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    cpu::act_norm_kernel<scalar_t>(x.const_data_ptr<scalar_t>(), xv, nullptr, y.work.mutable_data_ptr<scalar_t>(),
                                   y.v, cpu::Act<acc_t>::identity(), eps);
  });
  return y.finish();
}

at::Tensor pixel_norm_bwd_cpu(const at::Tensor& grad_, const at::Tensor& x_, double eps) {
  check_pixel_norm_input(x_, "x");
  TORCH_CHECK(grad_.sizes() == x_.sizes() && grad_.scalar_type() == x_.scalar_type(),
              "pygan::pixel_norm_bwd: grad must match x in shape and dtype");
  NCS gv, xv;
  const at::Tensor grad = ncs_input(grad_, gv), x = ncs_input(x_, xv);
  NCSOutput dx(output_like(grad_));
  if (x.numel() == 0) return dx.out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "pixel_norm_bwd", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    cpu::act_norm_bwd_kernel<scalar_t>(grad.const_data_ptr<scalar_t>(), gv, x.const_data_ptr<scalar_t>(), xv, nullptr,
                                       dx.work.mutable_data_ptr<scalar_t>(), dx.v, nullptr,
                                       cpu::Act<acc_t>::identity(), eps);
  });
  return dx.finish();
}

}  // namespace

TORCH_LIBRARY_IMPL(pygan, CPU, m) {
  m.impl("pixel_norm", &pixel_norm_cpu);
  m.impl("pixel_norm_bwd", &pixel_norm_bwd_cpu);
}

}  // namespace pygan
