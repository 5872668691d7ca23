// The schemas of every pygan op, defined once. Kernels register per backend in <op>.cpp (CPU)
// and <op>.cu (CUDA); fake kernels and autograd are registered from Python (pygan/ops/<op>.py),
// except instance_norm_act's first-order autograd, which is C++ (instance_norm_act_autograd.cpp).
// Each op `f` has a backward op `f_bwd` so that the backward is itself a differentiable op.
#include <torch/library.h>

TORCH_LIBRARY(pygan, m) {
  const std::vector<at::Tag> tags{at::Tag::pt2_compliant_tag};
  m.def("pixel_norm(Tensor x, float eps) -> Tensor", tags);
  m.def("pixel_norm_bwd(Tensor grad, Tensor x, float eps) -> Tensor", tags);

  m.def("bias_lrelu(Tensor x, Tensor? bias, float scale, float negative_slope, float gain)"
        " -> Tensor", tags);
  m.def("bias_lrelu_bwd(Tensor grad, Tensor out, float scale, float negative_slope, float gain,"
        " bool bias_grad) -> (Tensor, Tensor)", tags);

  m.def("bias_lrelu_pixel_norm(Tensor x, Tensor? bias, float scale, float negative_slope,"
        " float gain, float eps) -> Tensor", tags);
  m.def("bias_lrelu_pixel_norm_bwd(Tensor grad, Tensor x, Tensor? bias, float scale,"
        " float negative_slope, float gain, float eps, bool bias_grad) -> (Tensor, Tensor)", tags);

  m.def("minibatch_std(Tensor x, int group_size, int num_channels, float eps,"
        " bool unbiased=False) -> Tensor", tags);
  m.def("minibatch_std_bwd(Tensor grad, Tensor x, int group_size, int num_channels, float eps,"
        " bool unbiased=False) -> Tensor", tags);

  m.def("fade_in(Tensor low, Tensor high, Tensor alpha, bool tanh=False) -> Tensor", tags);
  m.def("fade_in_bwd(Tensor grad, Tensor alpha, bool upsampled, Tensor? tanh_out=None)"
        " -> (Tensor, Tensor)", tags);

  m.def("gradient_penalty(Tensor grad, float target) -> (Tensor, Tensor)", tags);
  m.def("gradient_penalty_bwd(Tensor grad_loss, Tensor grad, Tensor norms, float target)"
        " -> Tensor", tags);

  m.def("instance_norm_act(Tensor x, Tensor? weight, Tensor? bias, Tensor? residual,"
        " float negative_slope, float eps) -> Tensor", tags);
  m.def("instance_norm_act_bwd(Tensor grad, Tensor x, Tensor? weight, Tensor? bias,"
        " float negative_slope, float eps) -> (Tensor, Tensor, Tensor)", tags);
}
