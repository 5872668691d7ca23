"""Progressive-growing fade-in as a layer (Karras et al. 2018, "Progressive Growing of GANs", §3)."""

from __future__ import annotations

import torch
from torch import nn

from .. import ops
from ..ops.fade_in import check_activation


class FadeIn(nn.Module):
    """Blend the previous resolution's output into the new one's while a new block fades in:

        y = alpha * high + (1 - alpha) * up(low)            activation None or "linear"
        y = tanh(alpha * high + (1 - alpha) * up(low))      activation "tanh"

    ``low`` is (N, C, H/2, W/2) (2x nearest-neighbour upsampled inside the op, never
    materialised) or (N, C, H, W); ``high`` is (N, C, H, W); ``alpha`` a float or 0-dim tensor in
    [0, 1]. The default blend is linear, as in the paper: a tanh around it is a known cause of
    collapse; ``activation="tanh"`` exists to reproduce code that has one (the ProGAN tutorial's
    generator), fused into the same op. When the two inputs differ in dtype (under autocast, say)
    both are computed in their promoted dtype.
    """

    def __init__(self, activation: str | None = None):
        super().__init__()
        check_activation(activation)
        self.activation = activation

    def extra_repr(self) -> str:
        return "" if self.activation is None else f"activation={self.activation!r}"

    def forward(self, low: torch.Tensor, high: torch.Tensor,
                alpha: float | torch.Tensor) -> torch.Tensor:
        if isinstance(low, torch.Tensor) and isinstance(high, torch.Tensor) and low.dtype != high.dtype:
            dtype = torch.promote_types(low.dtype, high.dtype)
            low, high = low.to(dtype), high.to(dtype)
        if self.activation is None:
            return ops.fade_in(low, high, alpha)
        return ops.fade_in(low, high, alpha, activation=self.activation)
