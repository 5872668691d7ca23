"""Minibatch standard deviation (Karras et al. 2018 §3; the StyleGAN form with channel groups).

With G = min(group_size, N) samples per group and M = N / G groups, sample n = g * M + m belongs
to group m (so group m holds samples m, m + M, m + 2M, ...). Channels split into F =
``num_channels`` groups of Cf = C / F, P = H * W pixels. The variance divides the sum of squared
deviations by d:

    d = G          (``unbiased=False``, the default: the biased variance of the papers' code)
    d = G - 1      (``unbiased=True``: Bessel's correction, as ``torch.std`` computes it;
                    needs G >= 2)

For every group m and channel group f:

    u = x[g*M+m, c, p] - mean_g x[g*M+m, c, p]          (the mean always divides by G)
    sigma[m, c, p] = sqrt(sum_g u^2 / d + eps)
    s[m, f] = mean_{c in f, p} sigma[m, c, p]

and the output is x with F channels appended: out[n, C + f, p] = s[n mod M, f]. With
group_size=None, num_channels=1, unbiased=True and eps=0 this is the ProGAN tutorial's
``torch.std(x, dim=0).mean()`` appended as one map.

Backward: since sum_g u_g = 0, d sigma / d x_j = u_j / (d sigma), so

    dx = grad[:, :C] + gs[m, f] / (Cf * P) * u / (d * sigma)

with gs[m, f] the sum of the appended channels' gradient over the group's samples and pixels.
Double backward: see :func:`minibatch_std_double_backward` (both variants: d enters as above,
the group mean of the incoming cotangent still divides by G). Gradients: first and second order.
"""

from __future__ import annotations

import torch

from . import _checks, _registry


def variance_divisor(G: int, unbiased: bool) -> int:
    """d, the divisor of the sum of squared deviations: G - 1 when ``unbiased``, else G.

    Raises ValueError for ``unbiased`` with a group of one sample (the unbiased variance of one
    sample is 0 / 0; ``torch.std`` gives nan)."""
    if not unbiased:
        return G
    if G < 2:
        raise ValueError(f"minibatch_std: unbiased=True needs at least 2 samples per group, got a "
                         f"group size of G={G} (the unbiased variance of one sample is undefined); "
                         f"use unbiased=False or a larger group_size / batch")
    return G - 1


def minibatch_std_reference(x: torch.Tensor, group_size: int | None = 4, num_channels: int = 1,
                            eps: float = 1e-8, unbiased: bool = False) -> torch.Tensor:
    """Plain PyTorch minibatch standard deviation: the oracle every backend is tested against."""
    N, C, H, W = x.shape
    G = N if group_size is None else min(group_size, N)
    F = num_channels
    d = variance_divisor(G, unbiased)
    y = x.reshape(G, -1, F, C // F, H, W)
    y = (y - y.mean(dim=0)).square()
    y = y.mean(dim=0) if not unbiased else y.sum(dim=0) / d
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
    if N == 0:
        raise ValueError(f"minibatch_std: x has no samples (shape {tuple(x.shape)}); the statistic is "
                         "taken over the minibatch, so N must be >= 1")
    G = N if group_size is None else min(group_size, N)
    if N % G:
        raise ValueError(f"minibatch_std: batch size N={N} is not divisible by the group size "
                         f"G=min(group_size={group_size}, N)={G}")
    if C % num_channels:
        raise ValueError(f"minibatch_std: channel count C={C} is not divisible by "
                         f"num_channels={num_channels}")
    return G


def minibatch_std(x: torch.Tensor, group_size: int | None = 4, num_channels: int = 1,
                  eps: float = 1e-8, *, unbiased: bool = False,
                  backend: str | None = None) -> torch.Tensor:
    """Append ``num_channels`` minibatch-standard-deviation feature maps to ``x``.

    Args:
        x: (N, C, H, W) floating point; any memory layout.
        group_size: samples per group, G = min(group_size, N); None means the whole batch.
        num_channels: F, the number of statistics (channel groups); C must be divisible by F.
        eps: added to the variance before the square root (keeps N = 1 finite).
        unbiased: divide the sum of squared deviations by G - 1 (as ``torch.std`` does) instead
            of G; needs G >= 2. ``minibatch_std(x, None, 1, 0.0, unbiased=True)`` is
            ``cat([x, torch.std(x, dim=0).mean() as one map], dim=1)``.

    Returns: (N, C + F, H, W). Gradients: first and second order.
    """
    G = group_count(x, group_size, num_channels)
    eps = _checks.number("eps", eps, low=0.0)
    if not isinstance(unbiased, bool):
        raise TypeError(f"minibatch_std: unbiased must be a bool (True or False), got "
                        f"{type(unbiased).__name__}")
    variance_divisor(G, unbiased)
    impl = _registry.resolve("minibatch_std", backend, x.device)
    if impl == "reference":
        return minibatch_std_reference(x, G, num_channels, eps, unbiased)
    return _registry.namespace(impl).minibatch_std(x, G, num_channels, eps, unbiased)


def output_memory_format(x: torch.Tensor) -> torch.memory_format:
    """The layout the compiled kernels give their new tensors: channels_last iff x is."""
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


def minibatch_std_double_backward(h, grad, x, G, F, eps, unbiased=False):
    """Gradients of <h, minibatch_std_bwd(grad, x)> with respect to grad and x (plain PyTorch).

    With d = G - 1 if ``unbiased`` else G, u = x - mean_g x, sigma = sqrt(sum_g u^2 / d + eps),
    k = gs / (Cf * P) and A = sum_g h_g u_g (per group, channel and pixel), the backward is
    dx_j = grad_j + k u_j / (d sigma). It is linear in grad: its transpose sends h to (h, ds),
    ds = sum_{c in f, p} A / (d sigma) / (Cf * P), the derivative of the statistic in direction
    h, replicated over the group's samples and pixels. For x, using d u_g / d x_j = [g = j] - 1/G
    (so dA/dx_j = h_j - mean_g h) and d sigma / d x_j = u_j / (d sigma):

        d/dx_j = k * ((h_j - mean_g h) / (d sigma) - A u_j / (d^2 sigma^3))

    (the mean of h divides by G in both variants: it comes from the mean of x). Computed in
    float32 for float16/bfloat16 inputs, with the last term as (A / (d sigma)) (u_j / (d sigma))
    / sigma: sigma^3 underflows float16 (to 0, giving inf * 0 = nan) once sigma < 0.03.
    """
    N, C, H, W = x.shape
    M, Cf = N // G, C // F
    d = G - 1 if unbiased else G
    k = 1.0 / (Cf * H * W)
    acc = torch.promote_types(x.dtype, torch.float32)
    xs = x.to(acc).reshape(G, M, F, Cf, H, W)
    u = xs - xs.mean(dim=0)
    sq = u.square()
    sigma = ((sq.sum(dim=0) / d if unbiased else sq.mean(dim=0)) + eps).sqrt()   # (M, F, Cf, H, W)
    hs = h.to(acc).reshape(G, M, F, Cf, H, W)
    q = (hs * u).sum(dim=0) / (d * sigma)                               # A / (d sigma)
    ds = q.sum(dim=(2, 3, 4)) * k                                       # (M, F)
    d_stat = ds.reshape(1, M, F, 1, 1).expand(G, M, F, H, W).reshape(N, F, H, W)
    d_grad = torch.cat([h, d_stat.to(h.dtype)], dim=1)
    gs = grad[:, C:].to(acc).reshape(G, M, F, H * W).sum(dim=(0, 3)) * k   # (M, F)
    gs = gs.reshape(1, M, F, 1, 1, 1)
    d_x = gs * ((hs - hs.mean(dim=0)) / (d * sigma) - q * (u / (d * sigma)) / sigma)
    return d_grad, d_x.reshape(N, C, H, W).to(x.dtype)


def register(ns: str) -> None:
    """Fake kernels and autograd for ``ns::minibatch_std`` and ``ns::minibatch_std_bwd``."""
    ops = getattr(torch.ops, ns)

    @torch.library.register_fake(f"{ns}::minibatch_std")
    def _(x, group_size, num_channels, eps, unbiased=False):
        N, C, H, W = x.shape
        return x.new_empty((N, C + num_channels, H, W)).contiguous(
            memory_format=output_memory_format(x))

    torch.library.register_fake(f"{ns}::minibatch_std_bwd",
                                lambda grad, x, group_size, num_channels, eps, unbiased=False:
                                torch.empty_like(x))

    def setup(ctx, inputs, output):
        x, ctx.group_size, ctx.num_channels, ctx.eps, ctx.unbiased = inputs
        ctx.save_for_backward(x)

    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        dx = ops.minibatch_std_bwd(grad, x, ctx.group_size, ctx.num_channels, ctx.eps, ctx.unbiased)
        return dx, None, None, None, None

    def setup_bwd(ctx, inputs, output):
        grad, x, ctx.group_size, ctx.num_channels, ctx.eps, ctx.unbiased = inputs
        ctx.save_for_backward(grad, x)

    def backward_bwd(ctx, h):
        grad, x = ctx.saved_tensors
        d_grad, d_x = minibatch_std_double_backward(h, grad, x, ctx.group_size, ctx.num_channels,
                                                    ctx.eps, ctx.unbiased)
        return d_grad, d_x, None, None, None, None

    torch.library.register_autograd(f"{ns}::minibatch_std", backward, setup_context=setup)
    torch.library.register_autograd(f"{ns}::minibatch_std_bwd", backward_bwd,
                                    setup_context=setup_bwd)


def selftest_cases(shape):
    """The op's cases for :mod:`pygan.ops.selftest` and the static sm_90 compile check on an
    (N, C, H, W) ``shape`` (N even): groups of two samples (the biased variance), and the whole
    batch with the unbiased variance and eps = 0 (the ProGAN tutorial's ``torch.std`` form; the
    inputs are continuous random numbers, so no variance is 0)."""
    from .selftest import Case

    x = torch.randn(tuple(shape), generator=torch.Generator().manual_seed(14), dtype=torch.float64)
    return [
        Case("minibatch_std", lambda b, t: minibatch_std(t, 2, 1, backend=b),
             lambda t: minibatch_std_reference(t, 2, 1), (x,)),
        Case("minibatch_std_unbiased",
             lambda b, t: minibatch_std(t, None, 1, 0.0, unbiased=True, backend=b),
             lambda t: minibatch_std_reference(t, None, 1, 0.0, unbiased=True), (x,)),
    ]
