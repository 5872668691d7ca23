"""Pixel norm as a layer (Karras et al. 2018, "Progressive Growing of GANs", §4.2)."""

from __future__ import annotations

import torch
from torch import nn

from .. import ops
from . import _validate


class PixelNorm(nn.Module):
    """Normalise each feature vector to unit root-mean-square over channels (dim 1):

        y[n, c, ...] = x[n, c, ...] / sqrt(mean_c x[n, c, ...]^2 + eps)

    Input (N, C) or (N, C, *spatial), any memory layout. Drop-in for the ``PixelNorm`` of
    common ProGAN code (no parameters, no state).
    """

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = _validate.real("eps", eps, low=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ops.pixel_norm(x, self.eps)

    def extra_repr(self) -> str:
        return f"eps={self.eps:g}"
