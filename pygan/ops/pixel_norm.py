"""Pixel norm (Karras et al. 2018, ProGAN §4.2).

    y[n, c, ...] = x[n, c, ...] * r[n, ...],    r = rsqrt(mean_c x[n, c, ...]^2 + eps)

Backward (J is symmetric):  dx = r * (g - y * mean_c(g * y)).
Gradients: first and second order on every backend (the ``_bwd`` op is differentiable).
"""

from __future__ import annotations

import torch

from . import _checks, _registry


def pixel_norm_reference(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Plain PyTorch pixel norm over dim 1: the oracle every backend is tested against."""
    return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + eps)


def pixel_norm(x: torch.Tensor, eps: float = 1e-8, *, backend: str | None = None) -> torch.Tensor:
    """Normalise every feature vector ``x[n, :, ...]`` to unit root-mean-square.

    Args:
        x: (N, C) or (N, C, *spatial), floating point; any memory layout.
        eps: added to the mean square before the reciprocal square root.
        backend: overrides the default backend (see :mod:`pygan.ops`).

    Gradients: first and second order.
    """
    _checks.tensor("x", x, min_dim=2, layout="(N, C, *spatial)")
    eps = _checks.number("eps", eps, low=0.0)
    impl = _registry.resolve("pixel_norm", backend, x.device)
    if impl == "reference":
        return pixel_norm_reference(x, eps)
    return _registry.namespace(impl).pixel_norm(x, eps)


def pixel_norm_double_backward(h: torch.Tensor, g: torch.Tensor, x: torch.Tensor,
                               eps: float) -> torch.Tensor:
    """d/dx of <h, pixel_norm_bwd(g, x)>, in plain (differentiable) PyTorch.

    With r = rsqrt(mean_c x^2 + eps), s = 1/C and dot products over channels:
        -r^3 s (h.g) x + 3 r^5 s^2 (h.x)(g.x) x - r^3 s ((g.x) h + (h.x) g)
    """
    s = 1.0 / x.shape[1]
    r = torch.rsqrt(x.square().mean(dim=1, keepdim=True) + eps)
    hg = (h * g).sum(dim=1, keepdim=True)
    hx = (h * x).sum(dim=1, keepdim=True)
    gx = (g * x).sum(dim=1, keepdim=True)
    r3s = r.pow(3) * s
    return (3 * r3s * r.square() * s * hx * gx - r3s * hg) * x - r3s * (gx * h + hx * g)


def register(ns: str) -> None:
    """Fake (meta) kernels and autograd for ``ns::pixel_norm`` and ``ns::pixel_norm_bwd``."""
    ops = getattr(torch.ops, ns)

    torch.library.register_fake(f"{ns}::pixel_norm", lambda x, eps: torch.empty_like(x))
    torch.library.register_fake(f"{ns}::pixel_norm_bwd",
                                lambda grad, x, eps: torch.empty_like(grad))

    def setup(ctx, inputs, output):
        x, ctx.eps = inputs
        ctx.save_for_backward(x)

    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return ops.pixel_norm_bwd(grad, x, ctx.eps), None

    def setup_bwd(ctx, inputs, output):
        grad, x, ctx.eps = inputs
        ctx.save_for_backward(grad, x)

    def backward_bwd(ctx, h):
        grad, x = ctx.saved_tensors
        d_grad = ops.pixel_norm_bwd(h, x, ctx.eps) if ctx.needs_input_grad[0] else None
        d_x = pixel_norm_double_backward(h, grad, x, ctx.eps) if ctx.needs_input_grad[1] else None
        return d_grad, d_x, None

    torch.library.register_autograd(f"{ns}::pixel_norm", backward, setup_context=setup)
    torch.library.register_autograd(f"{ns}::pixel_norm_bwd", backward_bwd, setup_context=setup_bwd)
