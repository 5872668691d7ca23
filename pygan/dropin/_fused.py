"""The callables ``pygan.accelerate`` installs in place of a module's ``forward`` or of one of
its methods, each computing the replaced code's maths with pygan's fused ops.

Each is stored as an *instance* attribute, so the class, the parameters, the state_dict and the
module tree stay as they were. Parameters are read from the module at every call (never
captured), so ``.to()``, ``load_state_dict`` and optimizers keep working. Inputs outside the fused
path (another rank, a non-float dtype, a shape the op does not take) run the original code.

The maths, per callable:

    ProducerChain   act(scale * lin(x; W) + b[c])            -> ops.bias_lrelu
                    pixel_norm(act(scale * lin(x; W) + b[c])) -> ops.bias_lrelu_pixel_norm
                    lin = conv2d / conv_transpose2d / linear without bias; act = leaky ReLU of
                    slope s (ReLU: s = 0; none: s = 1). conv(scale * x) = scale * conv(x).
    NormChain       act(instance_norm(x) * w[c] + b[c])      -> ops.instance_norm_act
    ResidualNorm    x + instance_norm(block(x))              -> ops.instance_norm_act(residual=x)
    PixelNormOnly   x / sqrt(mean_c x^2 + eps)                -> ops.pixel_norm
    Folded          identity: its maths moved into the chain's head
    MinibatchStdMethod  cat([x, mean(std_n(x))])              -> ops.minibatch_std
    FadeInMethod    [tanh](alpha * a + (1 - alpha) * b)      -> ops.fade_in
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from .. import ops

_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _is_float_tensor(x: object, dim: int | None = None) -> bool:
    return (isinstance(x, torch.Tensor) and x.dtype in _FLOATS
            and (dim is None or x.dim() == dim))


def class_forward(module: nn.Module, *args):
    """The module's own (class) forward, bypassing any instance-level patch."""
    return type(module).forward(module, *args)


def original_chain(head: nn.Module, tail: tuple[nn.Module, ...], x):
    """What a chain computed before it was fused: the head's and then each tail module's own
    forward."""
    out = class_forward(head, x)
    for t in tail:
        out = class_forward(t, out)
    return out


@dataclasses.dataclass(frozen=True)
class Producer:
    """Where a bias-free linear map, its bias and its weight scale live in a module.

    ``inner`` is the attribute holding the nn.Conv2d / nn.ConvTranspose2d / nn.Linear ("" when
    the module is one itself); ``bias_attr`` names the bias ("inner.bias", "bias" or None);
    ``scale_attr`` the float weight scale (None: 1).
    """

    inner: str
    bias_attr: str | None
    scale_attr: str | None

    def layer(self, module: nn.Module) -> nn.Module:
        return module.get_submodule(self.inner) if self.inner else module

    def bias(self, module: nn.Module) -> torch.Tensor | None:
        if self.bias_attr is None:
            return None
        if self.bias_attr == "inner.bias":
            return self.layer(module).bias
        return getattr(module, self.bias_attr)

    def scale(self, module: nn.Module) -> float:
        return 1.0 if self.scale_attr is None else float(getattr(module, self.scale_attr))

    def takes(self, module: nn.Module, x: object) -> bool:
        return _is_float_tensor(x, 2 if isinstance(self.layer(module), nn.Linear) else 4)

    def linear(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """lin(x; W) without bias or scale."""
        layer = self.layer(module)
        if isinstance(layer, nn.Linear):
            return F.linear(x, layer.weight)
        if isinstance(layer, nn.ConvTranspose2d):
            return F.conv_transpose2d(x, layer.weight, None, layer.stride, layer.padding,
                                      layer.output_padding, layer.groups, layer.dilation)
        return layer._conv_forward(x, layer.weight, None)     # handles every padding_mode

    def describe(self, module: nn.Module) -> str:
        layer = type(self.layer(module)).__name__
        scale = "" if self.scale_attr is None else f" * {self.scale_attr}"
        return f"{layer}{scale}"


class _Patch:
    """Base: remembers its owner so that the original code can run outside the fused path."""

    def __init__(self, owner: nn.Module, backend: str | None) -> None:
        self.owner = owner
        self.backend = backend


class Folded(_Patch):
    """The activation or pixel norm whose maths moved into the head of its chain."""

    def __init__(self, owner: nn.Module, into: str) -> None:
        super().__init__(owner, None)
        self.into = into

    def __call__(self, x):
        return x


class ProducerChain(_Patch):
    """Head of a [conv/linear] -> [activation] -> [pixel norm] chain.

    ``eager_on_cpu``: a plain nn.Linear + activation keeps PyTorch's addmm + activation on CPU
    tensors when the backend is left to pygan (None / "auto"): addmm adds the bias inside the
    GEMM for free, so the fused op saves one small pass and costs its autograd's Python overhead
    (measured: the MLP GAN seed's step 0.92x, the WGAN-GP MLP's 0.81x with the fused path).
    """

    def __init__(self, owner, producer: Producer, slope: float | None, pn_eps: float | None,
                 tail: tuple[nn.Module, ...], backend: str | None, eager_on_cpu: bool = False) -> None:
        super().__init__(owner, backend)
        self.producer, self.slope, self.pn_eps, self.tail = producer, slope, pn_eps, tail
        self.eager_on_cpu = eager_on_cpu and backend in (None, "auto")

    def _eager(self, x) -> bool:
        return (self.eager_on_cpu and x.device.type == "cpu"
                and (self.backend == "auto" or ops.get_backend() == "auto"))

    def __call__(self, x):
        m = self.owner
        if not self.producer.takes(m, x) or self._eager(x):
            return original_chain(m, self.tail, x)
        y = self.producer.linear(m, x)
        bias, scale = self.producer.bias(m), self.producer.scale(m)
        slope = 1.0 if self.slope is None else self.slope
        if self.pn_eps is not None:
            return ops.bias_lrelu_pixel_norm(y, bias, scale=scale, negative_slope=slope,
                                             eps=self.pn_eps, backend=self.backend)
        return ops.bias_lrelu(y, bias, scale=scale, negative_slope=slope, backend=self.backend)


def _norm_takes(norm: nn.Module, x: object) -> bool:
    return (_is_float_tensor(x, 4) and x.shape[1] == norm.num_features
            and x.shape[2] * x.shape[3] > 1)


def _activation_name(slope: float | None) -> tuple[str | None, float]:
    if slope is None:
        return None, 0.2
    return ("relu", 0.2) if slope == 0.0 else ("lrelu", slope)


class NormChain(_Patch):
    """Head of an [InstanceNorm2d] -> [activation] chain."""

    def __init__(self, owner, slope: float | None, tail: tuple[nn.Module, ...],
                 backend: str | None) -> None:
        super().__init__(owner, backend)
        self.slope, self.tail = slope, tail

    def __call__(self, x):
        m = self.owner
        if not _norm_takes(m, x):
            return original_chain(m, self.tail, x)
        activation, negative_slope = _activation_name(self.slope)
        return ops.instance_norm_act(x, m.weight, m.bias, activation=activation,
                                     negative_slope=negative_slope, eps=m.eps,
                                     backend=self.backend)


class ResidualNorm(_Patch):
    """``x + block(x)`` where ``block`` is an nn.Sequential ending in an InstanceNorm2d: the
    norm and the add run as one op."""

    def __init__(self, owner, block_attr: str, backend: str | None) -> None:
        super().__init__(owner, backend)
        self.block_attr = block_attr

    def __call__(self, x):
        block = self.owner.get_submodule(self.block_attr)
        norm = block[-1]
        if not _is_float_tensor(x, 4):
            return class_forward(self.owner, x)
        h = x
        for layer in list(block)[:-1]:
            h = layer(h)
        if not _norm_takes(norm, h) or h.shape != x.shape or h.dtype != x.dtype:
            return x + norm(h)
        return ops.instance_norm_act(h, norm.weight, norm.bias, eps=norm.eps, residual=x,
                                     backend=self.backend)


class PixelNormOnly(_Patch):
    """A pixel-norm module on its own."""

    def __init__(self, owner, eps_attr: str, backend: str | None) -> None:
        super().__init__(owner, backend)
        self.eps_attr = eps_attr

    def __call__(self, x):
        if not _is_float_tensor(x) or x.dim() < 2:
            return class_forward(self.owner, x)
        return ops.pixel_norm(x, float(getattr(self.owner, self.eps_attr)), backend=self.backend)


@dataclasses.dataclass(frozen=True)
class MinibatchStdForm:
    """What a minibatch-stddev module or method computes (see ``pygan.ops.minibatch_std``)."""

    group_size: int | None
    unbiased: bool
    eps: float

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        return ops.minibatch_std(x, self.group_size, 1, self.eps, unbiased=self.unbiased,
                                 backend="reference")

    def describe(self) -> str:
        group = "whole batch" if self.group_size is None else f"groups of {self.group_size}"
        return (f"{group}, {'unbiased' if self.unbiased else 'biased'}"
                + (f", eps={self.eps:g}" if self.eps else ""))


class MinibatchStdMethod(_Patch):
    """A method or forward of the form ``x -> cat([x, stat], dim=1)``."""

    def __init__(self, owner, name: str, form: MinibatchStdForm, backend: str | None) -> None:
        super().__init__(owner, backend)
        self.name, self.form = name, form

    def __call__(self, x):
        n = x.shape[0] if _is_float_tensor(x, 4) else 0
        groups = n if self.form.group_size is None else min(self.form.group_size, n)
        if n == 0 or (self.form.unbiased and groups < 2) or n % max(groups, 1):
            return getattr(type(self.owner), self.name)(self.owner, x)
        return ops.minibatch_std(x, self.form.group_size, 1, self.form.eps,
                                 unbiased=self.form.unbiased, backend=self.backend)


@dataclasses.dataclass(frozen=True)
class FadeInForm:
    """Argument positions of a fade-in method ``f(...)`` = [tanh](alpha * high + (1 - alpha) * low)."""

    alpha: int
    high: int
    low: int
    activation: str | None

    def describe(self) -> str:
        inner = "alpha * high + (1 - alpha) * low"
        return f"tanh({inner})" if self.activation else inner


class FadeInMethod(_Patch):
    def __init__(self, owner, name: str, form: FadeInForm, backend: str | None) -> None:
        super().__init__(owner, backend)
        self.name, self.form = name, form

    def __call__(self, *args):
        f = self.form
        if len(args) == 3:
            alpha, high, low = args[f.alpha], args[f.high], args[f.low]
            if (_is_float_tensor(high, 4) and _is_float_tensor(low, 4) and high.dtype == low.dtype
                    and high.shape == low.shape and _alpha_ok(alpha)):
                return ops.fade_in(low, high, alpha, activation=f.activation, backend=self.backend)
        return getattr(type(self.owner), self.name)(self.owner, *args)


def _alpha_ok(alpha: object) -> bool:
    if isinstance(alpha, bool):
        return False
    if isinstance(alpha, (int, float)):
        return 0.0 <= alpha <= 1.0
    return False
