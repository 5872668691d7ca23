"""Gradient-penalty norm term (Gulrajani et al. 2017; R1 of Mescheder et al. 2018 with target 0).

    loss = mean_n (||grad_n||_2 - target)^2,    grad_n = grad[n] flattened

One pass computes the per-sample norms (a second output, kept for the backward) and the loss.
Backward: d grad_n = g_loss * 2/N * (1 - target / ||grad_n||) * grad_n, and 0 where the norm
is 0 (the subgradient PyTorch's norm uses), so all-zero input has finite gradients.
Gradients: first order only; a second backward raises.
"""

from __future__ import annotations

import torch

from . import _checks, _registry


def gradient_penalty_reference(grad: torch.Tensor, target: float = 1.0) -> torch.Tensor:
    """Plain PyTorch gradient-penalty term: the oracle every backend is tested against."""
    norms = torch.linalg.vector_norm(grad.reshape(grad.shape[0], -1), dim=1)
    return (norms - target).square().mean()


def gradient_penalty(grad: torch.Tensor, target: float = 1.0, *,
                     backend: str | None = None) -> torch.Tensor:
    """``mean_n (||grad_n|| - target)^2`` over the batch dimension of a gradient tensor.

    Args:
        grad: (N, ...) gradient of the critic with respect to its input, N >= 1.
        target: the norm the penalty pulls towards: 1 for WGAN-GP, 0 for R1's mean squared norm.

    Returns: a 0-dim tensor. Gradients: first order only.
    """
    _checks.tensor("grad", grad, min_dim=1, layout="(N, ...)")
    if grad.shape[0] == 0:
        raise ValueError("grad must hold at least one sample (N >= 1); got N = 0")
    target = _checks.number("target", target, low=0.0)
    impl = _registry.resolve("gradient_penalty", backend, grad.device)
    if impl == "reference":
        return gradient_penalty_reference(grad, target)
    loss, _ = _registry.namespace(impl).gradient_penalty(grad, target)
    return loss


def norm_dtype(dtype: torch.dtype) -> torch.dtype:
    """The per-sample norms are kept in float32 for half-precision gradients."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def register(ns: str) -> None:
    """Fake kernels and autograd for ``ns::gradient_penalty`` and ``ns::gradient_penalty_bwd``."""
    ops = getattr(torch.ops, ns)

    @torch.library.register_fake(f"{ns}::gradient_penalty")
    def _(grad, target):
        return grad.new_empty(()), grad.new_empty((grad.shape[0],), dtype=norm_dtype(grad.dtype))

    torch.library.register_fake(f"{ns}::gradient_penalty_bwd",
                                lambda grad_loss, grad, norms, target: torch.empty_like(grad))

    def setup(ctx, inputs, output):
        grad, ctx.target = inputs
        ctx.save_for_backward(grad, output[1])
        ctx.set_materialize_grads(False)   # the unused norms output gets None, not a zero pass

    def backward(ctx, grad_loss, grad_norms):
        grad, norms = ctx.saved_tensors
        if grad_loss is None:
            grad_loss = grad.new_zeros(())
        d_grad = ops.gradient_penalty_bwd(grad_loss, grad, norms, ctx.target)
        if grad_norms is not None:  # only reached by code that uses the internal norms output
            w = torch.where(norms > 0, grad_norms / norms, torch.zeros_like(norms))
            d_grad = d_grad + grad * w.to(grad.dtype).reshape(-1, *([1] * (grad.dim() - 1)))
        return d_grad, None

    def backward_bwd(ctx, *grads):
        raise RuntimeError("pygan.ops.gradient_penalty supports first-order gradients only; "
                           "use backend='reference' to differentiate the penalty twice")

    torch.library.register_autograd(f"{ns}::gradient_penalty", backward, setup_context=setup)
    torch.library.register_autograd(f"{ns}::gradient_penalty_bwd", backward_bwd,
                                    setup_context=lambda ctx, inputs, output: None)
