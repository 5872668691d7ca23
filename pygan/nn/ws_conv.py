"""The weight-scaled convolution of widely used ProGAN code, as a drop-in layer.

Equalized learning rate (Karras et al. 2018, "Progressive Growing of GANs", §4.1): weights are
drawn from N(0, 1) and scaled at run time by He's constant, so every layer learns at the same
speed under Adam:

    y = conv2d(x, weight) * sqrt(gain / (in_channels * kernel_size^2)) + bias[c]

The scale and the bias are applied in one fused pass after the bias-free convolution.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from . import _validate
from ._epilogue import bias_activation


class WSConv2d(nn.Module):
    """Weight-scaled 2-D convolution with the constructor and state_dict of common ProGAN code.

    Args:
        in_channels, out_channels, kernel_size, stride, padding: as ``nn.Conv2d`` (square kernel).
        gain: variance gain of the runtime scale ``sqrt(gain / (in_channels * kernel_size^2))``;
            2 is He's value for (leaky) ReLU networks, 1 suits linear outputs such as toRGB.

    State: ``conv.weight`` (out, in, k, k) drawn from N(0, 1) and ``bias`` (out,) starting at
    zero. A state_dict that stores the bias as ``conv.bias`` (the other common layout, a
    convolution that keeps its own bias) loads too and gives the same outputs.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int = 1, gain: float = 2) -> None:
        super().__init__()
        _validate.positive_int("in_channels", in_channels)
        _validate.positive_int("out_channels", out_channels)
        _validate.positive_int("kernel_size", kernel_size)
        _validate.positive_int("stride", stride)
        _validate.non_negative_int("padding", padding)
        gain = _validate.real("gain", gain, low=0.0, low_open=True)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.scale = math.sqrt(gain / (in_channels * kernel_size**2))
        nn.init.normal_(self.conv.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return bias_activation(self.conv(x), self.bias, scale=self.scale, lrelu=False,
                               negative_slope=0.0, pixel_norm=False, eps=0.0)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # The other common layout keeps the bias inside the convolution: rename it before the
        # convolution itself would report ``conv.bias`` as an unexpected key.
        own, inner = prefix + "bias", prefix + "conv.bias"
        if inner in state_dict and own not in state_dict:
            state_dict[own] = state_dict.pop(inner)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"scale={self.scale:.6g}"
