"""Instance norm + activation (+ residual): CycleGAN's and pix2pix's ``Conv -> InstanceNorm2d ->
ReLU / LeakyReLU(0.2)`` epilogue and the ResNet block's ``x + IN(conv(...))`` in one op.

For every sample n and channel c, over the S spatial elements of the plane x[n, c]:

    mu  = mean_s x,    var = mean_s (x - mu)^2        (biased, no running statistics)
    xh  = (x - mu) / sqrt(var + eps)
    z   = xh * weight[c] + bias[c]                    (weight 1 and bias 0 when not given)
    y   = act(z) + residual                           (residual added after the activation)

with act the identity (``activation=None``), ReLU or leaky ReLU: act(z) = z * (1 if z > 0 else
slope), slope 1, 0 or ``negative_slope``. This is ``nn.InstanceNorm2d(affine=..., 
track_running_stats=False)`` followed by the activation (and the add).

Backward, with dz = g * act'(z) and P the plane's normalisation Jacobian (symmetric):

    P(k) = (k - mean_s k - xh * mean_s(k * xh)) / sqrt(var + eps)
    dx = weight[c] * P(dz),   dweight[c] = sum_{n,s} dz * xh,   dbias[c] = sum_{n,s} dz,
    dresidual = g.

Gradients: first and second order on every backend. The ``_bwd`` op's own derivative (plain
PyTorch, :func:`instance_norm_act_double_backward`) uses act'' = 0 away from the kink.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from . import _checks, _registry
from .bias_lrelu import channel_view

ACTIVATIONS = (None, "relu", "lrelu")


def _spatial_dims(x: torch.Tensor) -> tuple[int, ...]:
    return tuple(range(2, x.dim()))


def instance_norm_act_reference(x: torch.Tensor, weight: torch.Tensor | None = None,
                                bias: torch.Tensor | None = None, *, activation: str | None = None,
                                negative_slope: float = 0.2, eps: float = 1e-5,
                                residual: torch.Tensor | None = None) -> torch.Tensor:
    """Plain PyTorch instance norm + activation (+ residual): the oracle every backend is tested
    against (computed in x's dtype)."""
    dims = _spatial_dims(x)
    xc = x - x.mean(dim=dims, keepdim=True)
    z = xc * torch.rsqrt(xc.square().mean(dim=dims, keepdim=True) + eps)
    if weight is not None:
        z = z * channel_view(weight, x.dim())
    if bias is not None:
        z = z + channel_view(bias, x.dim())
    if activation == "relu":
        z = F.relu(z)
    elif activation == "lrelu":
        z = F.leaky_relu(z, negative_slope)
    return z if residual is None else z + residual


def activation_slope(activation: str | None, negative_slope: float) -> float:
    """The kernels' one activation parameter: act(z) = z * (1 if z > 0 else slope)."""
    return {None: 1.0, "relu": 0.0, "lrelu": negative_slope}[activation]


def check_instance_norm_act_args(x, weight, bias, activation, negative_slope, eps, residual):
    """Validate the arguments (errors name the argument); returns weight, bias, residual (cast to
    x's dtype where they are parameters), negative_slope and eps as floats."""
    _checks.tensor("x", x, min_dim=3, layout="(N, C, *spatial)")
    spatial = math.prod(x.shape[2:])
    if spatial <= 1:
        raise ValueError("instance norm needs more than one spatial element per channel "
                         "(as torch.nn.functional.instance_norm requires); got x of shape "
                         f"{tuple(x.shape)}")
    C = x.shape[1]
    out = []
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None:
            _checks.tensor(name, p, dim=1, layout="(C,)")
            if p.shape[0] != C:
                raise ValueError(f"{name} has {p.shape[0]} elements but x has {C} channels "
                                 f"(x.shape = {tuple(x.shape)}); they must match")
            _checks.same_device(x=x, **{name: p})
            p = p.to(x.dtype)
        out.append(p)
    if residual is not None:
        _checks.tensor("residual", residual)
        if residual.shape != x.shape:
            raise ValueError(f"residual has shape {tuple(residual.shape)} but x has "
                             f"{tuple(x.shape)}; they must match")
        _checks.same_device(x=x, residual=residual)
        _checks.same_dtype(x=x, residual=residual)
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be None, 'relu' or 'lrelu'; got {activation!r}")
    negative_slope = _checks.number("negative_slope", negative_slope, low=0.0)
    eps = _checks.number("eps", eps, low=0.0)
    return out[0], out[1], residual, negative_slope, eps


def instance_norm_act(x: torch.Tensor, weight: torch.Tensor | None = None,
                      bias: torch.Tensor | None = None, *, activation: str | None = None,
                      negative_slope: float = 0.2, eps: float = 1e-5,
                      residual: torch.Tensor | None = None,
                      backend: str | None = None) -> torch.Tensor:
    """``act(instance_norm(x) * weight[c] + bias[c]) + residual`` in one op.

    Args:
        x: (N, C, *spatial) floating point with more than one spatial element; any memory layout.
        weight, bias: (C,) or None (the affine parameters of ``nn.InstanceNorm2d``). Cast to
            ``x.dtype`` (gradients flow back to the original dtype).
        activation: None, ``"relu"`` or ``"lrelu"`` (leaky ReLU with ``negative_slope`` >= 0).
        eps: added to the biased variance inside the square root, >= 0.
        residual: None or a tensor like x (shape, dtype, device), added after the activation.
        backend: overrides the default backend (see :mod:`pygan.ops`).

    Statistics accumulate in float32 for half inputs (float64 for float64) in the compiled
    backends. Gradients: first and second order, for x, weight, bias and residual.
    """
    weight, bias, residual, negative_slope, eps = check_instance_norm_act_args(
        x, weight, bias, activation, negative_slope, eps, residual)
    impl = _registry.resolve("instance_norm_act", backend, x.device)
    if impl == "reference":
        return instance_norm_act_reference(x, weight, bias, activation=activation,
                                           negative_slope=negative_slope, eps=eps,
                                           residual=residual)
    return _registry.namespace(impl).instance_norm_act(
        x, weight, bias, residual, activation_slope(activation, negative_slope), eps)


def instance_norm_act_double_backward(h_x, h_w, h_b, g, x, weight, bias, slope, eps,
                                      need_g=True, need_x=True, need_w=True):
    """Derivatives of <(h_x, h_w, h_b), instance_norm_act_bwd(g, x, weight, bias)> with respect
    to g, x and weight, in plain (differentiable) PyTorch. h_b has no x- or weight-derivative.

    With sigma = act'(z), dz = g * sigma, u = w * dz, means <.> over the plane and P as in the
    module docstring:
        d g = sigma * (w * P(h_x) + xh * h_w + h_b)
        d x = r^2 xh (<h xh><u xh> - <u h> + <u><h>) - r (<u xh> P(h) + <h xh> P(u))
              + h_w * P(dz)                                                        (h = h_x)
        d w = sum_{n,s} dz * P(h_x)
    """
    dims = _spatial_dims(x)
    mean = lambda t: t.mean(dim=dims, keepdim=True)  # noqa: E731
    xc = x - mean(x)
    r = torch.rsqrt(mean(xc.square()) + eps)
    xh = xc * r
    w = channel_view(weight, x.dim()) if weight is not None else None
    z = xh if w is None else xh * w
    if bias is not None:
        z = z + channel_view(bias, x.dim())
    sigma = torch.where(z > 0, torch.ones_like(z), torch.full_like(z, slope))

    def P(k):
        return r * (k - mean(k) - xh * mean(k * xh))

    dz = g * sigma
    d_g = d_x = d_w = None
    if need_g:
        terms = []
        if h_x is not None:
            terms.append(P(h_x) if w is None else w * P(h_x))
        if h_w is not None:
            terms.append(xh * channel_view(h_w, x.dim()))
        if h_b is not None:
            terms.append(channel_view(h_b, x.dim()).expand_as(x))
        if terms:
            d_g = sigma * sum(terms[1:], terms[0])
    if need_x:
        parts = []
        if h_x is not None:
            h = h_x
            u = dz if w is None else w * dz
            u_xh, h_xh = mean(u * xh), mean(h * xh)
            parts.append(r.square() * xh * (h_xh * u_xh - mean(u * h) + mean(u) * mean(h))
                         - r * (u_xh * P(h) + h_xh * P(u)))
        if h_w is not None:
            parts.append(channel_view(h_w, x.dim()) * P(dz))
        if parts:
            d_x = sum(parts[1:], parts[0])
    if need_w and weight is not None and h_x is not None:
        d_w = (dz * P(h_x)).sum(dim=(0, *dims))
    return d_g, d_x, d_w


def register(ns: str) -> None:
    """Fake kernels and autograd for ``ns::instance_norm_act`` and ``ns::instance_norm_act_bwd``."""
    ops = getattr(torch.ops, ns)

    torch.library.register_fake(f"{ns}::instance_norm_act",
                                lambda x, weight, bias, residual, slope, eps: torch.empty_like(x))

    @torch.library.register_fake(f"{ns}::instance_norm_act_bwd")
    def _(grad, x, weight, bias, slope, eps):
        C = x.shape[1]
        return torch.empty_like(x), x.new_empty((C,)), x.new_empty((C,))

    def setup(ctx, inputs, output):
        x, weight, bias, residual, ctx.slope, ctx.eps = inputs
        ctx.has_residual = residual is not None
        ctx.save_for_backward(x, weight, bias)

    def backward(ctx, grad):
        x, weight, bias = ctx.saved_tensors
        need = ctx.needs_input_grad
        d_x = d_w = d_b = None
        if need[0] or need[1] or need[2]:
            d_x, d_w, d_b = ops.instance_norm_act_bwd(grad, x, weight, bias, ctx.slope, ctx.eps)
        return (d_x if need[0] else None, d_w if need[1] else None, d_b if need[2] else None,
                grad if ctx.has_residual and need[3] else None, None, None)

    def setup_bwd(ctx, inputs, output):
        grad, x, weight, bias, ctx.slope, ctx.eps = inputs
        ctx.save_for_backward(grad, x, weight, bias)
        ctx.set_materialize_grads(False)

    def backward_bwd(ctx, h_x, h_w, h_b):
        grad, x, weight, bias = ctx.saved_tensors
        need = ctx.needs_input_grad
        d_g, d_x, d_w = instance_norm_act_double_backward(
            h_x, h_w, h_b, grad, x, weight, bias, ctx.slope, ctx.eps,
            need_g=need[0], need_x=need[1], need_w=need[2])
        return d_g, d_x, d_w, None, None, None

    # pygan._C registers the autograd of pygan::instance_norm_act in C++ (the same formula without
    # torch.library's Python cost per call: csrc/instance_norm_act_autograd.cpp); the Triton
    # namespace gets this one. (Its _bwd op keeps the Python double backward in both.)
    if ns != "pygan":
        torch.library.register_autograd(f"{ns}::instance_norm_act", backward, setup_context=setup)
    torch.library.register_autograd(f"{ns}::instance_norm_act_bwd", backward_bwd,
                                    setup_context=setup_bwd)


def selftest_cases(shape):
    """The op's cases for :mod:`pygan.ops.selftest` and the static sm_90 compile check: CycleGAN's
    three uses on an (N, C, H, W) ``shape`` (norm + ReLU; affine norm + leaky ReLU; the ResNet
    block's norm + residual), and one on 96x96 planes, which the GPU backends split into chunks
    (more than 8192 pixels per plane)."""
    from .selftest import Case

    n, c, h, w = shape
    gen = torch.Generator().manual_seed(13)
    view = (n, c, 1, 1)
    x = (torch.randn(shape, generator=gen, dtype=torch.float64) * (0.5 + torch.rand(view, generator=gen, dtype=torch.float64))
         + torch.randn(view, generator=gen, dtype=torch.float64))
    weight = 1 + 0.3 * torch.randn(c, generator=gen, dtype=torch.float64)
    bias = 0.3 * torch.randn(c, generator=gen, dtype=torch.float64)
    res = torch.randn(shape, generator=gen, dtype=torch.float64)
    big = torch.randn(1, 3, 96, 96, generator=gen, dtype=torch.float64) + 0.5
    ref = instance_norm_act_reference
    return [
        Case("instance_norm_act_relu", lambda b, t: instance_norm_act(t, activation="relu", backend=b),
             lambda t: ref(t, activation="relu"), (x,)),
        Case("instance_norm_act_affine_lrelu",
             lambda b, t, wt, bs: instance_norm_act(t, wt, bs, activation="lrelu", backend=b),
             lambda t, wt, bs: ref(t, wt, bs, activation="lrelu"), (x, weight, bias)),
        Case("instance_norm_act_residual", lambda b, t, r: instance_norm_act(t, residual=r, backend=b),
             lambda t, r: ref(t, residual=r), (x, res)),
        Case("instance_norm_act_split", lambda b, t: instance_norm_act(t, activation="lrelu", backend=b),
             lambda t: ref(t, activation="lrelu"), (big,)),
    ]
