"""Triton kernels of pygan, installed as ``pygan.triton_kernels`` (one module per op).

:func:`define_ops` defines every op of ``csrc/schemas.cpp`` again in the namespace
``torch.ops.pygan_triton`` (same names, same schemas), each launching its Triton kernel.
Fake kernels and autograd are registered afterwards by ``pygan.ops`` with the same helpers as the
C++ ops, so both backends share one autograd formula per op.

The kernels run on CUDA tensors, or on CPU tensors when ``TRITON_INTERPRET=1`` is set before
``pygan`` is imported (Triton reads it when the kernels are defined).
"""

from __future__ import annotations

#: name -> (schema without the name, "module.launcher"), exactly as in csrc/schemas.cpp
SCHEMAS = {
    "pixel_norm": ("(Tensor x, float eps) -> Tensor", "pixel_norm.pixel_norm"),
    "pixel_norm_bwd": ("(Tensor grad, Tensor x, float eps) -> Tensor", "pixel_norm.pixel_norm_bwd"),
    "bias_lrelu": ("(Tensor x, Tensor? bias, float scale, float negative_slope, float gain) "
                   "-> Tensor", "bias_lrelu.bias_lrelu"),
    "bias_lrelu_bwd": ("(Tensor grad, Tensor out, float scale, float negative_slope, float gain, "
                       "bool bias_grad) -> (Tensor, Tensor)", "bias_lrelu.bias_lrelu_bwd"),
    "bias_lrelu_pixel_norm": ("(Tensor x, Tensor? bias, float scale, float negative_slope, "
                              "float gain, float eps) -> Tensor",
                              "bias_lrelu_pixel_norm.bias_lrelu_pixel_norm"),
    "bias_lrelu_pixel_norm_bwd": ("(Tensor grad, Tensor x, Tensor? bias, float scale, "
                                  "float negative_slope, float gain, float eps, bool bias_grad) "
                                  "-> (Tensor, Tensor)",
                                  "bias_lrelu_pixel_norm.bias_lrelu_pixel_norm_bwd"),
    "minibatch_std": ("(Tensor x, int group_size, int num_channels, float eps, "
                      "bool unbiased=False) -> Tensor", "minibatch_std.minibatch_std"),
    "minibatch_std_bwd": ("(Tensor grad, Tensor x, int group_size, int num_channels, float eps, "
                          "bool unbiased=False) -> Tensor", "minibatch_std.minibatch_std_bwd"),
    "fade_in": ("(Tensor low, Tensor high, Tensor alpha, bool tanh=False) -> Tensor", "fade_in.fade_in"),
    "fade_in_bwd": ("(Tensor grad, Tensor alpha, bool upsampled, Tensor? tanh_out=None) "
                    "-> (Tensor, Tensor)", "fade_in.fade_in_bwd"),
    "gradient_penalty": ("(Tensor grad, float target) -> (Tensor, Tensor)",
                         "gradient_penalty.gradient_penalty"),
    "gradient_penalty_bwd": ("(Tensor grad_loss, Tensor grad, Tensor norms, float target) "
                             "-> Tensor", "gradient_penalty.gradient_penalty_bwd"),
    "instance_norm_act": ("(Tensor x, Tensor? weight, Tensor? bias, Tensor? residual, "
                          "float negative_slope, float eps) -> Tensor",
                          "instance_norm_act.instance_norm_act"),
    "instance_norm_act_bwd": ("(Tensor grad, Tensor x, Tensor? weight, Tensor? bias, "
                              "float negative_slope, float eps) -> (Tensor, Tensor, Tensor)",
                              "instance_norm_act.instance_norm_act_bwd"),
}

_defined: dict[str, object] = {}


def define_ops() -> None:
    """Define the ops of :data:`SCHEMAS` in ``torch.ops.pygan_triton`` (once per process; later
    calls do nothing)."""
    if _defined:
        return
    import importlib

    import torch

    ops = {}
    for name, (schema, target) in SCHEMAS.items():
        module_name, fn_name = target.split(".")
        module = importlib.import_module(f"{__name__}.{module_name}")
        ops[name] = torch.library.custom_op(
            f"pygan_triton::{name}", getattr(module, fn_name), mutates_args=(), schema=schema,
            tags=(torch.Tag.pt2_compliant_tag,))
    _defined.update(ops)
