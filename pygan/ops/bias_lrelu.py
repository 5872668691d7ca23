"""Bias + leaky ReLU with gains: the equalized-learning-rate epilogue of a bias-free layer.

    z = x * scale + bias[c]          (bias broadcast along dim 1)
    y = gain * leaky_relu(z, negative_slope)

Backward, read from the saved output (gain > 0 and negative_slope >= 0 make y > 0 exactly where
z > 0, so the input need not be kept alive):
    dz = g * gain * (1 if y > 0 else negative_slope);   dx = scale * dz;   dbias = sum_{n,...} dz

``bias_lrelu_bwd`` is linear in g and piecewise constant in y, so its own derivative is
``dz`` applied to the incoming (dx, dbias) gradients. Gradients: first and second order.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import _checks, _registry


def channel_view(t: torch.Tensor, ndim: int) -> torch.Tensor:
    """A (C,) tensor viewed as (1, C, 1, ...) for broadcasting against an ``ndim``-d tensor."""
    return t.view(1, -1, *([1] * (ndim - 2)))


def bias_lrelu_reference(x: torch.Tensor, bias: torch.Tensor | None = None, *, scale: float = 1.0,
                         negative_slope: float = 0.2, gain: float = 1.0) -> torch.Tensor:
    """Plain PyTorch bias + leaky ReLU: the oracle every backend is tested against."""
    z = x * scale
    if bias is not None:
        z = z + channel_view(bias, x.dim())
    return F.leaky_relu(z, negative_slope) * gain


def check_bias_lrelu_args(x, bias, scale, negative_slope, gain):
    _checks.tensor("x", x, min_dim=2, layout="(N, C, *spatial)")
    if bias is not None:
        _checks.tensor("bias", bias, dim=1, layout="(C,)")
        if bias.shape[0] != x.shape[1]:
            raise ValueError(f"bias has {bias.shape[0]} elements but x has {x.shape[1]} channels "
                             f"(x.shape = {tuple(x.shape)}); they must match")
        _checks.same_device(x=x, bias=bias)
        bias = bias.to(x.dtype)
    scale = _checks.number("scale", scale)
    negative_slope = _checks.number("negative_slope", negative_slope, low=0.0)
    gain = _checks.number("gain", gain, low=0.0, low_open=True)
    return bias, scale, negative_slope, gain


def bias_lrelu(x: torch.Tensor, bias: torch.Tensor | None = None, *, scale: float = 1.0,
               negative_slope: float = 0.2, gain: float = 1.0,
               backend: str | None = None) -> torch.Tensor:
    """``gain * leaky_relu(x * scale + bias[c], negative_slope)`` in one pass.

    Args:
        x: (N, C) or (N, C, *spatial), floating point; any memory layout.
        bias: (C,) or None. Cast to ``x.dtype`` (gradients flow back to the original dtype).
        scale: multiplies ``x`` before the bias (the equalized-learning-rate weight scale).
        negative_slope: slope for negative inputs, >= 0.
        gain: multiplies the activation, > 0 (sqrt(2) for ProGAN's leaky ReLU layers).

    Gradients: first and second order.
    """
    bias, scale, negative_slope, gain = check_bias_lrelu_args(x, bias, scale, negative_slope, gain)
    impl = _registry.resolve("bias_lrelu", backend, x.device)
    if impl == "reference":
        return bias_lrelu_reference(x, bias, scale=scale, negative_slope=negative_slope, gain=gain)
    return _registry.namespace(impl).bias_lrelu(x, bias, scale, negative_slope, gain)


def register(ns: str) -> None:
    """Fake (meta) kernels and autograd for ``ns::bias_lrelu`` and ``ns::bias_lrelu_bwd``."""
    ops = getattr(torch.ops, ns)

    torch.library.register_fake(f"{ns}::bias_lrelu",
                                lambda x, bias, scale, slope, gain: torch.empty_like(x))

    @torch.library.register_fake(f"{ns}::bias_lrelu_bwd")
    def _(grad, out, scale, slope, gain, bias_grad):
        return torch.empty_like(grad), grad.new_empty((grad.shape[1] if bias_grad else 0,))

    def setup(ctx, inputs, output):
        _, bias, ctx.scale, ctx.slope, ctx.gain = inputs
        ctx.has_bias = bias is not None
        ctx.save_for_backward(output)

    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        bias_grad = ctx.has_bias and ctx.needs_input_grad[1]
        grad_x, grad_bias = ops.bias_lrelu_bwd(grad, out, ctx.scale, ctx.slope, ctx.gain, bias_grad)
        return grad_x, (grad_bias if bias_grad else None), None, None, None

    def setup_bwd(ctx, inputs, output):
        _, out, ctx.scale, ctx.slope, ctx.gain, ctx.bias_grad = inputs
        ctx.save_for_backward(out)
        ctx.set_materialize_grads(False)

    def backward_bwd(ctx, h_x, h_bias):
        (out,) = ctx.saved_tensors
        # Transpose of the linear map g -> (scale * dz, sum dz): dz applied to scale*h_x + h_bias.
        u = h_x * ctx.scale if h_x is not None else None
        if ctx.bias_grad and h_bias is not None:
            hb = channel_view(h_bias, out.dim())
            u = hb.expand_as(out) if u is None else u + hb
        if u is None or not ctx.needs_input_grad[0]:
            return None, None, None, None, None, None
        d_grad, _ = ops.bias_lrelu_bwd(u, out, 1.0, ctx.slope, ctx.gain, False)
        return d_grad, None, None, None, None, None

    torch.library.register_autograd(f"{ns}::bias_lrelu", backward, setup_context=setup)
    torch.library.register_autograd(f"{ns}::bias_lrelu_bwd", backward_bwd, setup_context=setup_bwd)
