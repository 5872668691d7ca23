"""Equalized-learning-rate layers with fused epilogues (Karras et al. 2018, "Progressive Growing
of GANs", §4.1).

Weights are drawn from N(0, 1) and scaled at run time by ``sqrt(gain / fan_in)``; the scale,
the bias, an optional leaky ReLU and an optional pixel norm (§4.2) run as one fused op after the
bias-free convolution or matmul:

    y = act(W x * sqrt(gain / fan_in) + b)                 activation="lrelu" -> bias_lrelu
    y = pixel_norm(act(W x * sqrt(gain / fan_in) + b))     pixel_norm=True    -> bias_lrelu_pixel_norm

``gain`` is a variance gain: 2 (He's value for leaky ReLU networks) matches the official ProGAN
code's ``gain=sqrt(2)`` standard-deviation gain; 1 suits linear outputs. The fused ops are not
autocast-aware, so they receive the convolution's output dtype and cast the bias to it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import _validate
from ._epilogue import bias_activation, check_activation, describe


class _Equalized(nn.Module):
    """What the equalized layers share: the runtime scale and the fused epilogue's settings."""

    def _setup_epilogue(self, fan_in: int, out: int, bias: bool, gain: float,
                        activation: str | None, pixel_norm: bool, negative_slope: float,
                        eps: float) -> None:
        gain = _validate.real("gain", gain, low=0.0, low_open=True)
        if not isinstance(bias, bool):
            raise TypeError(f"bias must be a bool, got {type(bias).__name__}")
        if not isinstance(pixel_norm, bool):
            raise TypeError(f"pixel_norm must be a bool, got {type(pixel_norm).__name__}")
        self.lrelu = check_activation(activation)
        self.negative_slope = _validate.real("negative_slope", negative_slope, low=0.0)
        self.pixel_norm = pixel_norm
        self.eps = _validate.real("eps", eps, low=0.0)
        self.gain = gain
        self.scale = math.sqrt(gain / fan_in)
        self.bias = nn.Parameter(torch.zeros(out)) if bias else None

    def _epilogue(self, y: torch.Tensor) -> torch.Tensor:
        return bias_activation(y, self.bias, scale=self.scale, lrelu=self.lrelu,
                               negative_slope=self.negative_slope, pixel_norm=self.pixel_norm,
                               eps=self.eps)

    def _describe(self) -> str:
        return (f"bias={self.bias is not None}, gain={self.gain:g}, "
                f"{describe(self.lrelu, self.negative_slope, self.pixel_norm)}")


class EqualizedConv2d(_Equalized):
    """2-D convolution with equalized learning rate and a fused bias/activation/pixel-norm epilogue.

    Args:
        in_channels, out_channels, kernel_size, stride: as ``nn.Conv2d`` (square kernel).
        padding: defaults to ``kernel_size // 2`` ("same" for odd kernels at stride 1).
        bias: learn a per-channel bias (starts at zero).
        gain: variance gain of the scale ``sqrt(gain / (in_channels * kernel_size^2))``.
        activation: None / "linear" (identity) or "lrelu" (leaky ReLU, ``negative_slope``).
        pixel_norm: pixel-normalise the activated output (ProGAN's generator layers).
        eps: pixel norm's epsilon.

    State: ``weight`` (out, in, k, k) drawn from N(0, 1) and ``bias`` (out,).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 stride: int = 1, padding: int | None = None, bias: bool = True,
                 gain: float = 2.0, activation: str | None = None, pixel_norm: bool = False,
                 negative_slope: float = 0.2, eps: float = 1e-8) -> None:
        super().__init__()
        self.in_channels = _validate.positive_int("in_channels", in_channels)
        self.out_channels = _validate.positive_int("out_channels", out_channels)
        self.kernel_size = _validate.positive_int("kernel_size", kernel_size)
        self.stride = _validate.positive_int("stride", stride)
        self.padding = (kernel_size // 2 if padding is None
                        else _validate.non_negative_int("padding", padding))
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self._setup_epilogue(in_channels * kernel_size**2, out_channels, bias, gain, activation,
                             pixel_norm, negative_slope, eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._epilogue(F.conv2d(x, self.weight, None, self.stride, self.padding))

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, {self._describe()}")


class EqualizedLinear(_Equalized):
    """Fully connected layer with equalized learning rate and a fused epilogue.

    Args:
        in_features, out_features: as ``nn.Linear``.
        bias, gain, activation, pixel_norm, negative_slope, eps: as :class:`EqualizedConv2d`,
            with the scale ``sqrt(gain / in_features)``.

    Input (N, in_features); output (N, out_features).
    State: ``weight`` (out, in) drawn from N(0, 1) and ``bias`` (out,).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 gain: float = 2.0, activation: str | None = None, pixel_norm: bool = False,
                 negative_slope: float = 0.2, eps: float = 1e-8) -> None:
        super().__init__()
        self.in_features = _validate.positive_int("in_features", in_features)
        self.out_features = _validate.positive_int("out_features", out_features)
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self._setup_epilogue(in_features, out_features, bias, gain, activation, pixel_norm,
                             negative_slope, eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 2:
            raise ValueError(f"EqualizedLinear expects x of shape (N, {self.in_features}); "
                             f"got {tuple(x.shape)}")
        return self._epilogue(F.linear(x, self.weight))

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, {self._describe()}"
