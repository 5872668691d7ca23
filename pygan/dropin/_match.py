"""Recognising the code ``pygan.accelerate`` can replace.

Layer types of ``torch.nn`` are recognised by their exact class (a subclass may override
``forward``). Modules of the user's own classes are recognised by what they compute: a copy is
run once in float64 on a probe input chosen so that every candidate form gives a different
answer (tiny magnitudes make an ``eps`` visible), and a form is accepted only when it agrees to
1e-9 relative. Nothing here changes the model.
"""

from __future__ import annotations

import copy
import inspect

import torch
from torch import nn

from ._fused import FadeInForm, MinibatchStdForm, Producer

_LAYERS = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
_MATCH_RTOL = 1e-9


def is_library_module(module: nn.Module) -> bool:
    """True for classes of torch and pygan, whose forward is known by class."""
    name = type(module).__module__
    return name.startswith(("torch.", "pygan.")) and not name.startswith("pygan.dropin.")


def is_users_module(module: nn.Module) -> bool:
    return not is_library_module(module)


def has_hooks(module: nn.Module) -> bool:
    return any(getattr(module, name, None) for name in (
        "_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"))


def agrees(out: object, expected: torch.Tensor) -> bool:
    if not isinstance(out, torch.Tensor) or out.shape != expected.shape:
        return False
    scale = max(1e-300, float(expected.abs().max()))
    return bool(torch.isfinite(out).all()) and float((out - expected).abs().max()) <= _MATCH_RTOL * scale


def activation_slope(module: nn.Module) -> float | None:
    """Leaky-ReLU slope of an exact nn.LeakyReLU (its slope) or nn.ReLU (0); else None."""
    if type(module) is nn.LeakyReLU:
        return float(module.negative_slope)
    if type(module) is nn.ReLU:
        return 0.0
    return None


def is_instance_norm(module: nn.Module) -> str | None:
    """None when ``module`` is an nn.InstanceNorm2d pygan can replace; else why not (or "" when it
    is no instance norm at all)."""
    if type(module) is not nn.InstanceNorm2d:
        return ""
    if module.track_running_stats:
        return "tracks running statistics (track_running_stats=True)"
    return None


def probe_shape(layer: nn.Module, batch: int = 2) -> tuple[int, ...]:
    """An input shape the layer accepts (spatial size at least twice its kernel)."""
    if isinstance(layer, nn.Linear):
        return (batch, layer.in_features)
    if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
        reach = max((k - 1) * d + 1 for k, d in zip(layer.kernel_size, layer.dilation))
        side = max(8, 2 * reach)
        return (batch, layer.in_channels, side, side)
    if isinstance(layer, nn.InstanceNorm2d):
        return (batch, layer.num_features, 8, 8)
    raise TypeError(type(layer).__name__)


def _float_attributes(module: nn.Module) -> list[str]:
    return [k for k, v in vars(module).items() if type(v) is float]


def producer(module: nn.Module) -> tuple[Producer | None, str]:
    """How ``module`` computes ``scale * lin(x; W) + b``, or (None, why not).

    torch's own Conv2d / ConvTranspose2d / Linear qualify as they are (scale 1). A module of the
    user's class qualifies when it holds exactly one such layer, at most one parameter of its own
    (a bias beside the layer) and a float attribute that is the weight scale, and a float64 copy
    of it reproduces ``scale * lin(x; W) + b`` (scale on the input or the output, bias inside the
    layer or beside it).
    """
    if type(module) in _LAYERS:
        return Producer("", "inner.bias" if module.bias is not None else None, None), ""
    if is_library_module(module):
        return None, ""
    children = list(module.named_children())
    if len(children) != 1 or type(children[0][1]) not in _LAYERS:
        return None, ""
    inner_name, layer = children[0]
    own = dict(module.named_parameters(recurse=False))
    if list(module.buffers(recurse=False)):
        return None, "has buffers of its own"
    if len(own) > 1 or any(p.dim() != 1 for p in own.values()):
        return None, "has parameters besides the layer's and one bias"
    if own and layer.bias is not None:
        return None, "has two biases"
    bias_attr = next(iter(own), None) or ("inner.bias" if layer.bias is not None else None)
    scales = _float_attributes(module)
    if not scales:
        return None, f"wraps {type(layer).__name__} without a float weight scale"
    probe_module = copy.deepcopy(module).to(device="cpu", dtype=torch.float64)   # probes run on the CPU
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(probe_shape(layer), generator=gen, dtype=torch.float64)
    try:
        with torch.no_grad():
            out = probe_module(x)
    except Exception as err:  # noqa: BLE001 - any failure means "not this form"
        return None, f"could not be probed ({type(err).__name__}: {err})"
    for scale_attr in scales:
        form = Producer(inner_name, bias_attr, scale_attr)
        with torch.no_grad():
            y = form.linear(probe_module, x) * form.scale(probe_module)
            bias = form.bias(probe_module)
            if bias is not None:
                y = y + bias.reshape((1, -1) + (1,) * (y.dim() - 2))
        if agrees(out, y):
            return form, ""
    return None, (f"does not compute scale * {type(layer).__name__}(x) + bias for any of "
                  f"its float attributes {scales}")


def _tiny_probe(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """float64 values whose magnitudes span 1e-6..1 per sample and pixel, so that an eps of
    1e-8 added to a mean square changes the result visibly."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=torch.float64)
    mags = 10.0 ** -torch.randint(0, 7, (shape[0], 1) + shape[2:], generator=gen).double()
    return x * mags


def pixel_norm_eps(module: nn.Module) -> str | None:
    """The eps attribute of a parameter-free module computing ``x / sqrt(mean_c x^2 + eps)``."""
    if is_library_module(module) or list(module.parameters()) or list(module.buffers()):
        return None
    if list(module.children()):
        return None
    names = [k for k in _float_attributes(module) if "eps" in k.lower()]
    if not names:
        return None
    x = _tiny_probe((2, 6, 3, 3))
    try:
        with torch.no_grad():
            out = module(x)
    except Exception:  # noqa: BLE001
        return None
    for name in names:
        eps = getattr(module, name)
        if agrees(out, x / torch.sqrt(x.square().mean(dim=1, keepdim=True) + eps)):
            return name
    return None


_MBSTD_FORMS = tuple(MinibatchStdForm(g, u, e) for g in (None, 4, 2) for u in (True, False)
                     for e in (0.0, 1e-8))


def minibatch_std_form(fn, *, module_args: int = 1) -> MinibatchStdForm | None:
    """The form of ``fn(x) -> cat([x, stat], 1)`` among the whole-batch or grouped, biased or
    unbiased, eps 0 or 1e-8 minibatch standard deviations with one statistic; None if none."""
    gen = torch.Generator().manual_seed(1)
    # Small values make eps visible; the group structure is made visible by giving the
    # samples of the batch different spreads.
    x = torch.randn(8, 3, 4, 4, generator=gen, dtype=torch.float64) * 1e-4
    x = x * torch.arange(1, 9, dtype=torch.float64).reshape(8, 1, 1, 1)
    try:
        with torch.no_grad():
            out = fn(x)
    except Exception:  # noqa: BLE001
        return None
    if not isinstance(out, torch.Tensor) or out.shape != (8, 4, 4, 4):
        return None
    for form in _MBSTD_FORMS:
        if agrees(out, form.reference(x)):
            return form
    return None


def fade_in_form(fn) -> FadeInForm | None:
    """The argument roles of a three-argument ``fn`` computing
    ``[tanh](alpha * high + (1 - alpha) * low)`` with a float alpha; None if it does not."""
    gen = torch.Generator().manual_seed(2)
    tensors = [torch.randn(2, 3, 4, 4, generator=gen, dtype=torch.float64) for _ in range(2)]
    for alpha_pos in range(3):
        others = [i for i in range(3) if i != alpha_pos]
        results = []
        for alpha in (0.3, 0.8):
            args = [None] * 3
            args[alpha_pos] = alpha
            args[others[0]], args[others[1]] = tensors
            try:
                with torch.no_grad():
                    results.append(fn(*args))
            except Exception:  # noqa: BLE001
                break
        if len(results) != 2:
            continue
        for high_i in (0, 1):
            high, low = tensors[high_i], tensors[1 - high_i]
            for activation in (None, "tanh"):
                expected = [a * high + (1 - a) * low for a in (0.3, 0.8)]
                if activation:
                    expected = [torch.tanh(e) for e in expected]
                if all(agrees(r, e) for r, e in zip(results, expected)):
                    return FadeInForm(alpha_pos, others[high_i], others[1 - high_i], activation)
    return None


def user_methods(module: nn.Module, *, keyword: str, arity: int) -> list[str]:
    """Names of the functions of the module's own classes (not torch's) whose name contains
    ``keyword`` and that take ``arity`` positional arguments besides self."""
    names = []
    for cls in type(module).__mro__:
        if cls.__module__.startswith(("torch.", "builtins")) or cls is object:
            continue
        for name, fn in vars(cls).items():
            if name in names or name == "forward" or keyword not in name.lower():
                continue
            if not inspect.isfunction(fn):
                continue
            params = list(inspect.signature(fn).parameters.values())[1:]
            if len(params) == arity and all(
                    p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params):
                names.append(name)
    return names

