"""Minibatch standard deviation as a layer (Karras et al. 2018, "Progressive Growing of GANs", §3)."""

from __future__ import annotations

import torch
from torch import nn

from .. import ops
from . import _validate


class MinibatchStd(nn.Module):
    """Append ``num_channels`` feature maps holding the standard deviation of the features across
    groups of ``group_size`` samples, so the discriminator can see a batch's variety.

    With G = min(group_size, N): for every group and channel group, the per-feature standard
    deviation over the group's samples, averaged over channels and pixels, broadcast to every
    pixel of each of the group's samples. Input (N, C, H, W) with N divisible by G and C by
    ``num_channels``; output (N, C + num_channels, H, W). ProGAN uses group_size=4, num_channels=1.
    """

    def __init__(self, group_size: int = 4, num_channels: int = 1, eps: float = 1e-8) -> None:
        super().__init__()
        self.group_size = _validate.positive_int("group_size", group_size)
        self.num_channels = _validate.positive_int("num_channels", num_channels)
        self.eps = _validate.real("eps", eps, low=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ops.minibatch_std(x, self.group_size, self.num_channels, self.eps)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"
