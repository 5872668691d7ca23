// Pixel norm, CUDA: the act_norm kernels with the identity activation (see act_norm_cuda.cuh).
#include "act_norm_cuda.cuh"

namespace pygan {
namespace {

template <typename acc_t>
cuda::Act<acc_t> identity() { return cuda::Act<acc_t>{acc_t(1), acc_t(1), acc_t(1)}; }

at::Tensor pixel_norm_cuda(const at::Tensor& x_, double eps) {
  TORCH_CHECK(x_.dim() >= 2 && x_.is_floating_point(), "pygan::pixel_norm: x must be a floating-point "
              "(N, C, *spatial) tensor, got ", x_.sizes());
  cuda::check_same_device("pixel_norm", {{"x", &x_}});
  const c10::cuda::CUDAGuard guard(x_.device());
  NCS xv;
  const at::Tensor x = ncs_input(x_, xv);
  NCSOutput y(at::empty_like(x_));
  if (x.numel() == 0) return y.out;
  PYGAN_DISPATCH_FLOATING(x.scalar_type(), "pixel_norm_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    cuda::launch_act_norm_fwd<scalar_t, acc_t>(x.const_data_ptr<scalar_t>(), xv, nullptr,
                                               y.work.mutable_data_ptr<scalar_t>(), y.v, identity<acc_t>(), eps);
  });
  return y.finish();
}

at::Tensor pixel_norm_bwd_cuda(const at::Tensor& grad_, const at::Tensor& x_, double eps) {
  TORCH_CHECK(grad_.sizes() == x_.sizes() && grad_.scalar_type() == x_.scalar_type() && x_.dim() >= 2,
              "pygan::pixel_norm_bwd: grad must match x in shape and dtype");
  cuda::check_same_device("pixel_norm_bwd", {{"grad", &grad_}, {"x", &x_}});
  const c10::cuda::CUDAGuard guard(x_.device());
  NCS gv, xv;
  const at::Tensor grad = ncs_input(grad_, gv), x = ncs_input(x_, xv);
  NCSOutput dx(at::empty_like(grad_));
  if (x.numel() == 0) return dx.out;
  PYGAN_DISPATCH_FLOATING(x.scalar_type(), "pixel_norm_bwd_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    cuda::launch_act_norm_bwd<scalar_t, acc_t>(grad.const_data_ptr<scalar_t>(), gv, x.const_data_ptr<scalar_t>(), xv,
                                               nullptr, dx.work.mutable_data_ptr<scalar_t>(), dx.v,
                                               identity<acc_t>(), eps);
  });
  return dx.finish();
}

}  // namespace

TORCH_LIBRARY_IMPL(pygan, CUDA, m) {
  m.impl("pixel_norm", &pixel_norm_cuda);
  m.impl("pixel_norm_bwd", &pixel_norm_bwd_cuda);
}

}  // namespace pygan
