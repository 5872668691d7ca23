"""Progressive-growing fade-in (Karras et al. 2018 §3): blend the upsampled old output with the
new, higher-resolution one.

    out = alpha * high + (1 - alpha) * up(low)

up is 2x nearest-neighbour upsampling when ``low`` has half the spatial size of ``high`` (done
inside the op, never materialised), identity when the sizes match.

Backward: d_high = alpha * g;  d_low = (1 - alpha) * down(g), down summing each 2x2 block
(identity without upsampling);  d_alpha = sum g * (high - up(low)) when alpha requires grad.
``fade_in_bwd`` is linear in g and its transpose is ``fade_in`` itself.
Gradients: first and second order (in low, high and a tensor alpha).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import _checks, _registry
from .minibatch_std import output_memory_format


def upsample2x(low: torch.Tensor) -> torch.Tensor:
    """2x nearest-neighbour upsampling of an (N, C, H, W) tensor."""
    return F.interpolate(low, scale_factor=2.0, mode="nearest")


def fade_in_reference(low: torch.Tensor, high: torch.Tensor,
                      alpha: float | torch.Tensor) -> torch.Tensor:
    """Plain PyTorch fade-in: the oracle every backend is tested against."""
    if low.shape != high.shape:
        low = upsample2x(low)
    return alpha * high + (1 - alpha) * low


def check_fade_in_args(low, high, alpha) -> torch.Tensor:
    """Validate the arguments; return alpha as a 0-dim tensor."""
    _checks.tensor("low", low, dim=4, layout="(N, C, H, W)")
    _checks.tensor("high", high, dim=4, layout="(N, C, H, W)")
    _checks.same_dtype(high=high, low=low)
    _checks.same_device(high=high, low=low)
    lo, hi = tuple(low.shape), tuple(high.shape)
    half = (hi[0], hi[1], hi[2] // 2, hi[3] // 2)
    if lo != hi and (lo != half or hi[2] % 2 or hi[3] % 2):
        raise ValueError(f"fade_in: low must have the shape of high {hi} or half its spatial "
                         f"size {half}; got {lo}")
    if isinstance(alpha, torch.Tensor):
        if alpha.dim() != 0:
            raise ValueError(f"alpha must be a float or a 0-dim tensor; got shape {tuple(alpha.shape)}")
        _checks.tensor("alpha", alpha)
        if alpha.device.type == "cpu":   # a CUDA alpha is not read back: that would synchronise
            value = float(alpha.detach())
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"alpha must be in [0, 1], got {value}")
        elif alpha.device != high.device:
            raise ValueError(f"alpha is on {alpha.device} but high is on {high.device}; "
                             "pass a float, a CPU 0-dim tensor or one on high's device")
        return alpha
    return torch.tensor(_checks.number("alpha", alpha, low=0.0, high=1.0), dtype=torch.float64)


def fade_in(low: torch.Tensor, high: torch.Tensor, alpha: float | torch.Tensor, *,
            backend: str | None = None) -> torch.Tensor:
    """``alpha * high + (1 - alpha) * up(low)`` in one pass.

    Args:
        low: (N, C, H/2, W/2) or (N, C, H, W): the previous resolution's output.
        high: (N, C, H, W): the new resolution's output.
        alpha: float or 0-dim tensor in [0, 1] (a CUDA tensor is not range-checked, since that
            would synchronise the device).

    Gradients: first and second order.
    """
    alpha_t = check_fade_in_args(low, high, alpha)
    impl = _registry.resolve("fade_in", backend, high.device)
    if impl == "reference":
        return fade_in_reference(low, high, alpha)
    return _registry.namespace(impl).fade_in(low, high, alpha_t)


def register(ns: str) -> None:
    """Fake kernels and autograd for ``ns::fade_in`` and ``ns::fade_in_bwd``."""
    ops = getattr(torch.ops, ns)

    torch.library.register_fake(f"{ns}::fade_in", lambda low, high, alpha: torch.empty_like(high))

    @torch.library.register_fake(f"{ns}::fade_in_bwd")
    def _(grad, alpha, upsampled):
        N, C, H, W = grad.shape
        low_shape = (N, C, H // 2, W // 2) if upsampled else (N, C, H, W)
        grad_low = grad.new_empty(low_shape).contiguous(memory_format=output_memory_format(grad))
        return grad_low, torch.empty_like(grad)

    def setup(ctx, inputs, output):
        low, high, alpha = inputs
        ctx.upsampled = low.shape != high.shape
        ctx.save_for_backward(alpha, *((low, high) if alpha.requires_grad else ()))

    def backward(ctx, grad):
        alpha, *low_high = ctx.saved_tensors
        grad_low, grad_high = ops.fade_in_bwd(grad, alpha, ctx.upsampled)
        grad_alpha = None
        if low_high and ctx.needs_input_grad[2]:
            low, high = low_high
            diff = high - (upsample2x(low) if ctx.upsampled else low)
            grad_alpha = (grad * diff).sum().to(alpha.dtype)
        return grad_low, grad_high, grad_alpha

    def setup_bwd(ctx, inputs, output):
        grad, alpha, ctx.upsampled = inputs
        ctx.save_for_backward(grad, alpha)
        ctx.set_materialize_grads(False)

    def backward_bwd(ctx, h_low, h_high):
        grad, alpha = ctx.saved_tensors
        N, C, H, W = grad.shape
        if h_high is None:
            h_high = torch.zeros_like(grad)
        if h_low is None:
            h_low = grad.new_zeros((N, C, H // 2, W // 2) if ctx.upsampled else (N, C, H, W))
        d_grad = ops.fade_in(h_low, h_high, alpha) if ctx.needs_input_grad[0] else None
        d_alpha = None
        if ctx.needs_input_grad[1]:
            diff = h_high - (upsample2x(h_low) if ctx.upsampled else h_low)
            d_alpha = (grad * diff).sum().to(alpha.dtype)
        return d_grad, d_alpha, None

    torch.library.register_autograd(f"{ns}::fade_in", backward, setup_context=setup)
    torch.library.register_autograd(f"{ns}::fade_in_bwd", backward_bwd, setup_context=setup_bwd)
