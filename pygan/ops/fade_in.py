"""Progressive-growing fade-in (Karras et al. 2018 §3): blend the upsampled old output with the
new, higher-resolution one, optionally through a tanh.

    z   = alpha * high + (1 - alpha) * up(low)
    out = z                    activation None or "linear" (the paper's blend)
    out = tanh(z)              activation "tanh" (the ProGAN tutorial generator's fade_in)

up is 2x nearest-neighbour upsampling when ``low`` has half the spatial size of ``high`` (done
inside the op, never materialised), identity when the sizes match; down, its transpose, sums each
2x2 block (identity without upsampling).

Backward, with g the incoming gradient and gz the gradient of z:

    gz = g                      (linear)
    gz = g * (1 - out^2)        (tanh; computed as (1 - out)(1 + out) from the saved output)
    d_high = alpha * gz;  d_low = (1 - alpha) * down(gz);  d_alpha = sum gz * (high - up(low))

``fade_in_bwd(grad, alpha, upsampled, tanh_out=None)`` computes (d_low, d_high); with
``tanh_out`` (the forward's output) it applies the tanh factor first. Its own backward (the
double backward), for cotangents (h_low, h_high) of (d_low, d_high), with
v = alpha * h_high + (1 - alpha) * up(h_low) = ``fade_in(h_low, h_high, alpha)`` (linear):

    d_grad     = v                            (linear: fade_in_bwd is the transpose of fade_in)
    d_grad     = v * (1 - out^2)              (tanh)
    d_tanh_out = -2 * out * grad * v          (tanh)
    d_alpha    = sum gz * (h_high - up(h_low))

d_tanh_out flows back into the forward op's output, hence to low, high and alpha through the
forward's own backward. Gradients: first and second order (in low, high and a tensor alpha), for
both activations; the double backward is the linear ``fade_in`` op plus elementwise PyTorch, all
differentiable, so higher orders also work.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import _checks, _registry
from .minibatch_std import output_memory_format

#: accepted values of ``activation``
ACTIVATIONS = (None, "linear", "tanh")


def upsample2x(low: torch.Tensor) -> torch.Tensor:
    """2x nearest-neighbour upsampling of an (N, C, H, W) tensor."""
    return F.interpolate(low, scale_factor=2.0, mode="nearest")


def _repeat2x(t: torch.Tensor) -> torch.Tensor:
    """2x nearest-neighbour upsampling as an expand + reshape, for the autograd formulas (where
    only values matter, not the layout). Under AOTAutograd with dynamic shapes F.interpolate's
    decomposition brings a symbolic float scale that the tensorify pass fails on (KeyError: seen
    in opcheck's test_aot_dispatch_dynamic of fade_in_bwd with a tensor alpha requiring grad);
    this form has integer sizes only."""
    N, C, H, W = t.shape
    return t[:, :, :, None, :, None].expand(N, C, H, 2, W, 2).reshape(N, C, 2 * H, 2 * W)


def check_activation(activation: object) -> bool:
    """Validate ``activation``; return True for "tanh", False for None or "linear"."""
    if activation is None or (isinstance(activation, str) and activation in ("linear", "tanh")):
        return activation == "tanh"
    raise ValueError(f"activation must be one of {ACTIVATIONS} (None and 'linear' are the "
                     f"identity); got {activation!r}")


def fade_in_reference(low: torch.Tensor, high: torch.Tensor, alpha: float | torch.Tensor,
                      activation: str | None = None) -> torch.Tensor:
    """Plain PyTorch fade-in: the oracle every backend is tested against."""
    tanh = check_activation(activation)
    if low.shape != high.shape:
        low = upsample2x(low)
    out = alpha * high + (1 - alpha) * low
    return torch.tanh(out) if tanh else out


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
        # a CUDA alpha is not read back (that would synchronise), nor one being traced by
        # torch.compile (reading it is a data-dependent guard that fullgraph cannot take)
        if alpha.device.type == "cpu":
            if not torch.compiler.is_compiling():
                value = float(alpha.detach())
                if not 0.0 <= value <= 1.0:
                    raise ValueError(f"alpha must be in [0, 1], got {value}")
        elif alpha.device != high.device:
            raise ValueError(f"alpha is on {alpha.device} but high is on {high.device}; "
                             "pass a float, a CPU 0-dim tensor or one on high's device")
        return alpha
    return torch.tensor(_checks.number("alpha", alpha, low=0.0, high=1.0), dtype=torch.float64)


def fade_in(low: torch.Tensor, high: torch.Tensor, alpha: float | torch.Tensor, *,
            activation: str | None = None, backend: str | None = None) -> torch.Tensor:
    """``act(alpha * high + (1 - alpha) * up(low))`` in one pass.

    Args:
        low: (N, C, H/2, W/2) or (N, C, H, W): the previous resolution's output.
        high: (N, C, H, W): the new resolution's output.
        alpha: float or 0-dim tensor in [0, 1] (a CUDA tensor is not range-checked, since that
            would synchronise the device, nor is a tensor under torch.compile).
        activation: None or "linear" (the identity: the paper's linear blend), or "tanh"
            (``tanh(alpha * high + (1 - alpha) * up(low))``, the ProGAN tutorial's fade-in).

    Gradients: first and second order, for both activations (see the module docstring).
    """
    tanh = check_activation(activation)
    alpha_t = check_fade_in_args(low, high, alpha)
    impl = _registry.resolve("fade_in", backend, high.device)
    if impl == "reference":
        return fade_in_reference(low, high, alpha, activation)
    if tanh:
        return _registry.namespace(impl).fade_in(low, high, alpha_t, True)
    return _registry.namespace(impl).fade_in(low, high, alpha_t)


def selftest_cases(shape):
    """The self-test's cases (pygan.ops.selftest): the linear blend upsampled and same-size, and
    the same two with tanh (so the GPU self-test and the static sm_90 check cover both)."""
    from .selftest import Case, builtin_cases

    x, low = builtin_cases("fade_in", shape)[0].inputs
    cases = []
    for act, suffix in ((None, ""), ("tanh", "_tanh")):
        cases += [
            Case("fade_in" + suffix, lambda b, hi, lo, a=act: fade_in(lo, hi, 0.3, activation=a, backend=b),
                 lambda hi, lo, a=act: fade_in_reference(lo, hi, 0.3, a), (x, low)),
            Case("fade_in_same" + suffix, lambda b, hi, lo, a=act: fade_in(lo, hi, 0.6, activation=a, backend=b),
                 lambda hi, lo, a=act: fade_in_reference(lo, hi, 0.6, a), (x, x.flip(0))),
        ]
    return cases


def register(ns: str) -> None:
    """Fake kernels and autograd for ``ns::fade_in`` and ``ns::fade_in_bwd``."""
    ops = getattr(torch.ops, ns)

    torch.library.register_fake(f"{ns}::fade_in", lambda low, high, alpha, tanh=False: torch.empty_like(high))

    @torch.library.register_fake(f"{ns}::fade_in_bwd")
    def _(grad, alpha, upsampled, tanh_out=None):
        N, C, H, W = grad.shape
        low_shape = (N, C, H // 2, W // 2) if upsampled else (N, C, H, W)
        grad_low = grad.new_empty(low_shape).contiguous(memory_format=output_memory_format(grad))
        return grad_low, torch.empty_like(grad)

    def alpha_grad(g: torch.Tensor, y: torch.Tensor | None, a: torch.Tensor, b: torch.Tensor,
                   alpha: torch.Tensor) -> torch.Tensor:
        """sum gz * (a - up(b)) with gz = g, or g (1 - y^2) with tanh: the gradient of alpha.
        Half-precision tensors are summed in float32 (one rounding at the end, as the kernels
        accumulate), so the sum of N * C * H * W terms is not rounded term by term."""
        acc = torch.float32 if g.dtype in (torch.float16, torch.bfloat16) else g.dtype
        g, a, b = g.to(acc), a.to(acc), b.to(acc)
        gz = g if y is None else g * tanh_factor(y.to(acc))
        diff = a - (_repeat2x(b) if a.shape != b.shape else b)
        return (gz * diff).sum().to(alpha.dtype)

    def tanh_factor(y: torch.Tensor) -> torch.Tensor:
        """d tanh(z) / dz from the output y = tanh(z): 1 - y^2, as (1 - y)(1 + y)."""
        return (1 - y) * (1 + y)

    def setup(ctx, inputs, output):
        low, high, alpha, *rest = inputs
        ctx.upsampled = low.shape != high.shape
        ctx.tanh = bool(rest and rest[0])
        ctx.save_for_backward(alpha, *((output,) if ctx.tanh else ()),
                              *((low, high) if alpha.requires_grad else ()))

    def backward(ctx, grad):
        alpha, *saved = ctx.saved_tensors
        y = saved.pop(0) if ctx.tanh else None
        if y is None:
            grad_low, grad_high = ops.fade_in_bwd(grad, alpha, ctx.upsampled)
        else:
            grad_low, grad_high = ops.fade_in_bwd(grad, alpha, ctx.upsampled, y)
        grad_alpha = None
        if saved and ctx.needs_input_grad[2]:
            low, high = saved
            grad_alpha = alpha_grad(grad, y, high, low, alpha)
        return grad_low, grad_high, grad_alpha, None

    def setup_bwd(ctx, inputs, output):
        grad, alpha, ctx.upsampled, *rest = inputs
        y = rest[0] if rest else None
        ctx.tanh = y is not None
        ctx.save_for_backward(grad, alpha, *((y,) if ctx.tanh else ()))
        ctx.set_materialize_grads(False)

    def backward_bwd(ctx, h_low, h_high):
        grad, alpha, *saved = ctx.saved_tensors
        y = saved[0] if ctx.tanh else None
        N, C, H, W = grad.shape
        if h_high is None:
            h_high = torch.zeros_like(grad)
        if h_low is None:
            h_low = grad.new_zeros((N, C, H // 2, W // 2) if ctx.upsampled else (N, C, H, W))
        need_grad, need_alpha = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        need_y = ctx.tanh and ctx.needs_input_grad[3]
        # v = alpha * h_high + (1 - alpha) * up(h_low): the transpose of the linear part
        v = ops.fade_in(h_low, h_high, alpha) if need_grad or need_y else None
        d_grad = d_alpha = d_y = None
        # the tanh terms in float32 for half-precision tensors: one rounding each, at the end
        acc = torch.float32 if grad.dtype in (torch.float16, torch.bfloat16) else grad.dtype
        if need_grad:
            d_grad = v if y is None else (v.to(acc) * tanh_factor(y.to(acc))).to(grad.dtype)
        if need_y:
            d_y = (-2 * y.to(acc) * grad.to(acc) * v.to(acc)).to(y.dtype)
        if need_alpha:
            d_alpha = alpha_grad(grad, y, h_high, h_low, alpha)
        return d_grad, d_alpha, None, d_y

    torch.library.register_autograd(f"{ns}::fade_in", backward, setup_context=setup)
    torch.library.register_autograd(f"{ns}::fade_in_bwd", backward_bwd, setup_context=setup_bwd)
