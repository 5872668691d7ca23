"""Minibatch standard deviation (Karras et al. 2018 §3; the StyleGAN form with channel groups).

With G = min(group_size, N) samples per group and M = N / G groups, sample n = g * M + m belongs
to group m (so group m holds samples m, m + M, m + 2M, ...). Channels split into F =
``num_channels`` groups of Cf = C / F. For every group m and channel group f:

    u = x[g*M+m, c, p] - mean_g x[g*M+m, c, p]
    s[m, f] = mean_{c in f, p} sqrt(mean_g u^2 + eps)

and the output is x with F channels appended: out[n, C + f, p] = s[n mod M, f].

Backward: dx = grad[:, :C] + gs[m, f] / (Cf * P) * u / (G * sigma), with gs[m, f] the sum of the
appended channels' gradient over the group's samples and pixels, sigma = sqrt(mean_g u^2 + eps).
Gradients: first and second order.
"""

from __future__ import annotations

import torch

from . import _checks, _registry


def minibatch_std_reference(x: torch.Tensor, group_size: int | None = 4, num_channels: int = 1,
                            eps: float = 1e-8) -> torch.Tensor:
    """Plain PyTorch minibatch standard deviation: the oracle every backend is tested against."""
    N, C, H, W = x.shape
    G = N if group_size is None else min(group_size, N)
    F = num_channels
    y = x.reshape(G, -1, F, C // F, H, W)
    y = (y - y.mean(dim=0)).square().mean(dim=0)
    y = (y + eps).sqrt().mean(dim=(2, 3, 4))                  # (M, F)
    y = y.reshape(-1, F, 1, 1).repeat(G, 1, H, W)             # (N, F, H, W), sample g*M+m <- m
    return torch.cat([x, y.to(x.dtype)], dim=1)


def group_count(x: torch.Tensor, group_size: int | None, num_channels: int) -> int:
    """Check the arguments against ``x`` and return G, the number of samples per group."""
    _checks.tensor("x", x, dim=4, layout="(N, C, H, W)")
    N, C = x.shape[:2]
    if group_size is not None:
        _checks.integer("group_size", group_size)
    _checks.integer("num_channels", num_channels)
    G = N if group_size is None else min(group_size, N)
    if N % G:
        raise ValueError(f"minibatch_std: batch size N={N} is not divisible by the group size "
                         f"G=min(group_size={group_size}, N)={G}")
    if C % num_channels:
        raise ValueError(f"minibatch_std: channel count C={C} is not divisible by "
                         f"num_channels={num_channels}")
    return G


def minibatch_std(x: torch.Tensor, group_size: int | None = 4, num_channels: int = 1,
                  eps: float = 1e-8, *, backend: str | None = None) -> torch.Tensor:
    """Append ``num_channels`` minibatch-standard-deviation feature maps to ``x``.

    Args:
        x: (N, C, H, W) floating point; any memory layout.
        group_size: samples per group, G = min(group_size, N); None means the whole batch.
        num_channels: F, the number of statistics (channel groups); C must be divisible by F.
        eps: added to the variance before the square root (keeps N = 1 finite).

    Returns: (N, C + F, H, W). Gradients: first and second order.
    """
    G = group_count(x, group_size, num_channels)
    eps = _checks.number("eps", eps, low=0.0)
    impl = _registry.resolve("minibatch_std", backend, x.device)
    if impl == "reference":
        return minibatch_std_reference(x, G, num_channels, eps)
    return _registry.namespace(impl).minibatch_std(x, G, num_channels, eps)


def output_memory_format(x: torch.Tensor) -> torch.memory_format:
    """The layout the compiled kernels give their new tensors: channels_last iff x is."""
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


def minibatch_std_double_backward(h, grad, x, G, F, eps):
    """Gradients of <h, minibatch_std_bwd(grad, x)> with respect to grad and x (plain PyTorch).

    The map is linear in grad: its transpose sends h to (h, ds) where ds is the derivative of
    the statistic in direction h, replicated over the group and pixels. For x, with
    k = gs / (Cf * P) and u, sigma as in the module docstring:
        d/dx_j = k * ((h_j - mean_g h) / (G sigma) - (sum_g h_g u_g) u_j / (G^2 sigma^3))
    """
    N, C, H, W = x.shape
    M, Cf = N // G, C // F
    k = 1.0 / (Cf * H * W)
    xs = x.reshape(G, M, F, Cf, H, W)
    u = xs - xs.mean(dim=0)
    sigma = (u.square().mean(dim=0) + eps).sqrt()                       # (M, F, Cf, H, W)
    hs = h.reshape(G, M, F, Cf, H, W)
    hu = (hs * u).sum(dim=0)
    ds = (hu / (G * sigma)).sum(dim=(2, 3, 4)) * k                      # (M, F)
    d_stat = ds.reshape(1, M, F, 1, 1).expand(G, M, F, H, W).reshape(N, F, H, W)
    d_grad = torch.cat([h, d_stat.to(h.dtype)], dim=1)
    gs = grad[:, C:].reshape(G, M, F, H * W).sum(dim=(0, 3)) * k        # (M, F)
    gs = gs.reshape(1, M, F, 1, 1, 1)
    d_x = gs * ((hs - hs.mean(dim=0)) / (G * sigma) - hu * u / (G * G * sigma.pow(3)))
    return d_grad, d_x.reshape(N, C, H, W)


def register(ns: str) -> None:
    """Fake kernels and autograd for ``ns::minibatch_std`` and ``ns::minibatch_std_bwd``."""
    ops = getattr(torch.ops, ns)

    @torch.library.register_fake(f"{ns}::minibatch_std")
    def _(x, group_size, num_channels, eps):
        N, C, H, W = x.shape
        return x.new_empty((N, C + num_channels, H, W)).contiguous(
            memory_format=output_memory_format(x))

    torch.library.register_fake(f"{ns}::minibatch_std_bwd",
                                lambda grad, x, group_size, num_channels, eps: torch.empty_like(x))

    def setup(ctx, inputs, output):
        x, ctx.group_size, ctx.num_channels, ctx.eps = inputs
        ctx.save_for_backward(x)

    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return ops.minibatch_std_bwd(grad, x, ctx.group_size, ctx.num_channels, ctx.eps), None, None, None

    def setup_bwd(ctx, inputs, output):
        grad, x, ctx.group_size, ctx.num_channels, ctx.eps = inputs
        ctx.save_for_backward(grad, x)

    def backward_bwd(ctx, h):
        grad, x = ctx.saved_tensors
        d_grad, d_x = minibatch_std_double_backward(h, grad, x, ctx.group_size, ctx.num_channels,
                                                    ctx.eps)
        return d_grad, d_x, None, None, None

    torch.library.register_autograd(f"{ns}::minibatch_std", backward, setup_context=setup)
    torch.library.register_autograd(f"{ns}::minibatch_std_bwd", backward_bwd,
                                    setup_context=setup_bwd)
