"""Leaky ReLU activations computed by pygan's fused ``bias_lrelu`` op.

    LeakyReLU:      y = leaky_relu(x, negative_slope)                 (drop-in for torch.nn)
    ReLU:           y = max(x, 0)                                     (drop-in for torch.nn)
    BiasLeakyReLU:  y = gain * leaky_relu(x + bias[c], negative_slope), optionally pixel-normed

``BiasLeakyReLU`` owns a per-channel bias, so a bias-free linear or convolution followed by it is
a biased layer and its activation in one pass (the "fused leaky ReLU" of StyleGAN2).
"""

from __future__ import annotations

import torch
from torch import nn

from .. import ops
from . import _validate


class LeakyReLU(nn.Module):
    """``leaky_relu(x, negative_slope)`` over an (N, C, ...) tensor; arguments as torch.nn's.

    ``inplace`` is accepted so that ``nn.LeakyReLU(0.2, inplace=True)`` can be swapped for this
    class unchanged; the fused op always writes a new tensor.
    """

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        super().__init__()
        self.negative_slope = _validate.real("negative_slope", negative_slope, low=0.0)
        if not isinstance(inplace, bool):
            raise TypeError(f"inplace must be a bool, got {type(inplace).__name__}")
        self.inplace = inplace

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ops.bias_lrelu(x, None, negative_slope=self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope:g}"


class ReLU(LeakyReLU):
    """``max(x, 0)`` over an (N, C, ...) tensor: a leaky ReLU of slope 0 (drop-in for torch.nn)."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__(0.0, inplace)

    def extra_repr(self) -> str:
        return ""


class BiasLeakyReLU(nn.Module):
    """Per-channel bias, leaky ReLU and gain, optionally followed by pixel norm, in one pass:

        y = gain * leaky_relu(x + bias[c], negative_slope)        (x: (N, C) or (N, C, *spatial))
        y = pixel_norm(y)                                         when ``pixel_norm=True``

    The bias starts at zero. State: ``bias`` of shape (channels,).
    """

    def __init__(self, channels: int, negative_slope: float = 0.2, gain: float = 1.0,
                 pixel_norm: bool = False, eps: float = 1e-8) -> None:
        super().__init__()
        self.channels = _validate.positive_int("channels", channels)
        self.negative_slope = _validate.real("negative_slope", negative_slope, low=0.0)
        self.gain = _validate.real("gain", gain, low=0.0, low_open=True)
        if not isinstance(pixel_norm, bool):
            raise TypeError(f"pixel_norm must be a bool, got {type(pixel_norm).__name__}")
        self.pixel_norm = pixel_norm
        self.eps = _validate.real("eps", eps, low=0.0)
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pixel_norm:
            return ops.bias_lrelu_pixel_norm(x, self.bias, negative_slope=self.negative_slope,
                                             gain=self.gain, eps=self.eps)
        return ops.bias_lrelu(x, self.bias, negative_slope=self.negative_slope, gain=self.gain)

    def extra_repr(self) -> str:
        extra = ", pixel_norm=True" if self.pixel_norm else ""
        return f"{self.channels}, negative_slope={self.negative_slope:g}, gain={self.gain:g}{extra}"
