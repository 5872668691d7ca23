"""ProGAN's generator epilogue in one pass: bias + leaky ReLU, then pixel norm.

    a = gain * leaky_relu(x * scale + bias[c], negative_slope)
    y = a * r,    r = rsqrt(mean_c a^2 + eps)

Backward (one pass; a is recomputed from the saved inputs rather than stored):
    da = r * (g - y * mean_c(g * y));   dz = da * gain * (1 if a > 0 else negative_slope)
    dx = scale * dz;                    dbias = sum_{n,...} dz

The ``_bwd`` op's own derivative is the chain of the two parts: the transposed leaky-ReLU mask,
then pixel norm's symmetric Jacobian for g and its second derivative for a, then the bias +
leaky-ReLU backward into (x, bias). Gradients: first and second order.
"""

from __future__ import annotations

import torch

from . import _checks, _registry
from .bias_lrelu import bias_lrelu_reference, channel_view, check_bias_lrelu_args
from .pixel_norm import pixel_norm_double_backward, pixel_norm_reference


def bias_lrelu_pixel_norm_reference(x: torch.Tensor, bias: torch.Tensor | None = None, *,
                                    scale: float = 1.0, negative_slope: float = 0.2,
                                    gain: float = 1.0, eps: float = 1e-8) -> torch.Tensor:
    """Plain PyTorch ``pixel_norm(bias_lrelu(x, ...))``: the oracle for every backend."""
    a = bias_lrelu_reference(x, bias, scale=scale, negative_slope=negative_slope, gain=gain)
    return pixel_norm_reference(a, eps)


def bias_lrelu_pixel_norm(x: torch.Tensor, bias: torch.Tensor | None = None, *,
                          scale: float = 1.0, negative_slope: float = 0.2, gain: float = 1.0,
                          eps: float = 1e-8, backend: str | None = None) -> torch.Tensor:
    """``pixel_norm(bias_lrelu(x, bias, ...), eps)`` fused into one pass over ``x``.

    Arguments as :func:`pygan.ops.bias_lrelu` and :func:`pygan.ops.pixel_norm`.
    Gradients: first and second order.
    """
    bias, scale, negative_slope, gain = check_bias_lrelu_args(x, bias, scale, negative_slope, gain)
    eps = _checks.number("eps", eps, low=0.0)
    impl = _registry.resolve("bias_lrelu_pixel_norm", backend, x.device)
    if impl == "reference":
        return bias_lrelu_pixel_norm_reference(x, bias, scale=scale, negative_slope=negative_slope,
                                               gain=gain, eps=eps)
    return _registry.namespace(impl).bias_lrelu_pixel_norm(x, bias, scale, negative_slope, gain, eps)


def register(ns: str) -> None:
    """Fake kernels and autograd for ``ns::bias_lrelu_pixel_norm`` and its ``_bwd`` op."""
    ops = getattr(torch.ops, ns)

    torch.library.register_fake(f"{ns}::bias_lrelu_pixel_norm",
                                lambda x, bias, scale, slope, gain, eps: torch.empty_like(x))

    @torch.library.register_fake(f"{ns}::bias_lrelu_pixel_norm_bwd")
    def _(grad, x, bias, scale, slope, gain, eps, bias_grad):
        return torch.empty_like(grad), grad.new_empty((grad.shape[1] if bias_grad else 0,))

    def setup(ctx, inputs, output):
        x, bias, ctx.scale, ctx.slope, ctx.gain, ctx.eps = inputs
        ctx.has_bias = bias is not None
        ctx.save_for_backward(x, bias)

    def backward(ctx, grad):
        x, bias = ctx.saved_tensors
        bias_grad = ctx.has_bias and ctx.needs_input_grad[1]
        grad_x, grad_bias = ops.bias_lrelu_pixel_norm_bwd(grad, x, bias, ctx.scale, ctx.slope,
                                                          ctx.gain, ctx.eps, bias_grad)
        return grad_x, (grad_bias if bias_grad else None), None, None, None, None

    def setup_bwd(ctx, inputs, output):
        grad, x, bias, ctx.scale, ctx.slope, ctx.gain, ctx.eps, ctx.bias_grad = inputs
        ctx.has_bias = bias is not None
        ctx.save_for_backward(grad, x, bias)
        ctx.set_materialize_grads(False)

    def backward_bwd(ctx, h_x, h_bias):
        grad, x, bias = ctx.saved_tensors
        a = ops.bias_lrelu(x, bias, ctx.scale, ctx.slope, ctx.gain)
        u = h_x * ctx.scale if h_x is not None else torch.zeros_like(a)
        if ctx.bias_grad and h_bias is not None:
            u = u + channel_view(h_bias, a.dim())
        h_a_out, _ = ops.bias_lrelu_bwd(u, a, 1.0, ctx.slope, ctx.gain, False)
        d_grad = ops.pixel_norm_bwd(h_a_out, a, ctx.eps) if ctx.needs_input_grad[0] else None
        d_x = d_bias = None
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            h_a = pixel_norm_double_backward(h_a_out, grad, a, ctx.eps)
            want_bias = ctx.has_bias and ctx.needs_input_grad[2]
            d_x, d_bias = ops.bias_lrelu_bwd(h_a, a, ctx.scale, ctx.slope, ctx.gain, want_bias)
            d_bias = d_bias if want_bias else None
        return d_grad, d_x, d_bias, None, None, None, None, None

    torch.library.register_autograd(f"{ns}::bias_lrelu_pixel_norm", backward, setup_context=setup)
    torch.library.register_autograd(f"{ns}::bias_lrelu_pixel_norm_bwd", backward_bwd,
                                    setup_context=setup_bwd)
