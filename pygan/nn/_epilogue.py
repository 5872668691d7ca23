"""The fused epilogue shared by the weight-scaled layers: weight scale, bias, activation and
pixel norm applied to a bias-free convolution or matmul output in one pass.

    y = act(x * scale + bias[c])              -> pygan.ops.bias_lrelu
    y = pixel_norm(act(x * scale + bias[c]))  -> pygan.ops.bias_lrelu_pixel_norm

``act`` is leaky ReLU with ``negative_slope``, or the identity (a leaky ReLU of slope 1).
"""

from __future__ import annotations

import torch

from .. import ops
from . import _validate

ACTIVATIONS = (None, "linear", "lrelu")


def check_activation(activation: object) -> bool:
    """Validate ``activation``; True when it is leaky ReLU."""
    return _validate.choice("activation", activation, ACTIVATIONS) == "lrelu"


def bias_activation(x: torch.Tensor, bias: torch.Tensor | None, *, scale: float, lrelu: bool,
                    negative_slope: float, pixel_norm: bool, eps: float) -> torch.Tensor:
    slope = negative_slope if lrelu else 1.0
    if pixel_norm:
        return ops.bias_lrelu_pixel_norm(x, bias, scale=scale, negative_slope=slope, eps=eps)
    return ops.bias_lrelu(x, bias, scale=scale, negative_slope=slope)


def describe(lrelu: bool, negative_slope: float, pixel_norm: bool) -> str:
    parts = [f"activation=lrelu({negative_slope:g})" if lrelu else "activation=linear"]
    if pixel_norm:
        parts.append("pixel_norm=True")
    return ", ".join(parts)
