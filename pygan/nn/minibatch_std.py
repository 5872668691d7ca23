"""Minibatch standard deviation as a layer (Karras et al. 2018, "Progressive Growing of GANs", §3),
with the averaging variants of the authors' original Theano code (``MinibatchStatConcatLayer``)."""

from __future__ import annotations

import re

import torch
from torch import nn

from .. import ops
from ..ops.minibatch_std import group_count
from . import _validate

#: The Theano code's ``averaging`` modes besides ``group<N>`` (which is ``all`` with N statistics).
AVERAGING = ("all", "spatial", "none", "gpool", "flat")


def parse_averaging(averaging: object) -> tuple[str, int]:
    """``averaging`` as (mode, number of channel groups): ``"group4"`` -> ("all", 4), else (mode, 1)."""
    if isinstance(averaging, str):
        match = re.fullmatch(r"group([1-9][0-9]*)", averaging)
        if match:
            return "all", int(match.group(1))
        if averaging in AVERAGING:
            return averaging, 1
    raise ValueError(f"averaging must be one of {', '.join(AVERAGING)} or group<N> (N >= 1); "
                     f"got {averaging!r}")


def _std(y: torch.Tensor, dims: tuple[int, ...], eps: float) -> torch.Tensor:
    """sqrt(mean_dims (y - mean_dims y)^2 + eps), keeping dims (the Theano code's ``Tstdeps``)."""
    return ((y - y.mean(dim=dims, keepdim=True)).square().mean(dim=dims, keepdim=True) + eps).sqrt()


class MinibatchStd(nn.Module):
    """Append feature maps holding the standard deviation of the features across groups of
    ``group_size`` samples, so the discriminator can see a batch's variety.

    Samples: G = N if ``group_size`` is None (the whole minibatch, as the paper describes it and
    the Theano code computes it), else min(group_size, N) (the TensorFlow code, G = 4); N must
    be divisible by G. Sample n = g * M + m (M = N / G) belongs to group m. With
    sigma(dims) = sqrt(mean_dims (x - mean_dims x)^2 + eps) over the group's samples g and the
    named dimensions, the appended maps for input (N, C, H, W) are, by ``averaging``:

    * ``all`` (default; ProGAN): per feature sigma over g, averaged over channels and pixels:
      1 map (F maps with ``num_channels`` = F: the average over each of F channel groups of
      C / F channels). Runs on the fused op :func:`pygan.ops.minibatch_std` on every backend,
      first and second order gradients included.
    * ``group<N>``: ``all`` with F = N channel groups (the Theano code's name for it).
    * ``spatial``: per feature sigma over g, averaged over pixels: C maps (one per channel).
    * ``none``: per feature sigma over g, not averaged: C maps.
    * ``gpool``: sigma over g and the pixels together, per channel: C maps.
    * ``flat``: sigma over g, channels and pixels together: 1 map.

    Each map is constant over its group's samples (and over pixels where averaged). The
    variants other than ``all``/``group<N>``, which the paper did not use, run as plain
    PyTorch (reference maths, differentiable to any order), not a fused kernel.

    ``unbiased=True`` (averaging ``all`` / ``group<N>`` only) divides the sum of squared
    deviations over the group by G - 1 instead of G, as ``torch.std`` does; with
    group_size=None and eps=0 the layer is the common ProGAN tutorial's
    ``cat([x, torch.std(x, dim=0).mean() repeated as one map], dim=1)``. It needs G >= 2.

    Output: (N, C + k, H, W) with k = :meth:`extra_channels` (C). ProGAN uses group_size=4 (the
    official code) or None (the paper), num_channels=1, averaging ``all``.
    """

    def __init__(self, group_size: int | None = 4, num_channels: int = 1, eps: float = 1e-8,
                 averaging: str = "all", unbiased: bool = False) -> None:
        super().__init__()
        if not isinstance(unbiased, bool):
            raise TypeError(f"unbiased must be a bool (True or False), got {type(unbiased).__name__}")
        self.group_size = None if group_size is None else _validate.positive_int("group_size", group_size)
        self.num_channels = _validate.positive_int("num_channels", num_channels)
        self.eps = _validate.real("eps", eps, low=0.0)
        mode, groups = parse_averaging(averaging)
        if groups > 1:
            if self.num_channels not in (1, groups):
                raise ValueError(f"averaging={averaging!r} sets num_channels={groups}; got "
                                 f"num_channels={num_channels}")
            self.num_channels = groups
        if mode != "all" and self.num_channels != 1:
            raise ValueError(f"num_channels={num_channels} applies to averaging 'all' / group<N> "
                             f"only; got averaging={averaging!r}")
        if unbiased and mode != "all":
            raise ValueError(f"unbiased=True applies to averaging 'all' / group<N> only; got "
                             f"averaging={averaging!r}")
        self.averaging = averaging
        self.mode = mode
        self.unbiased = unbiased

    def extra_channels(self, channels: int) -> int:
        """How many maps the layer appends to an input of ``channels`` channels."""
        if self.mode == "all":
            return self.num_channels
        return 1 if self.mode == "flat" else channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "all":
            return ops.minibatch_std(x, self.group_size, self.num_channels, self.eps,
                                     unbiased=self.unbiased)
        G = group_count(x, self.group_size, 1)
        N, C, H, W = x.shape
        y = x.reshape(G, N // G, C, H, W).to(torch.promote_types(x.dtype, torch.float32))
        if self.mode == "spatial":
            s = _std(y, (0,), self.eps).mean(dim=(3, 4), keepdim=True)        # (1, M, C, 1, 1)
        elif self.mode == "none":
            s = _std(y, (0,), self.eps)                                        # (1, M, C, H, W)
        elif self.mode == "gpool":
            s = _std(y, (0, 3, 4), self.eps)                                   # (1, M, C, 1, 1)
        else:   # flat
            s = _std(y, (0, 2, 3, 4), self.eps)                                # (1, M, 1, 1, 1)
        s = s.expand(G, -1, -1, H, W).reshape(N, -1, H, W)
        return torch.cat([x, s.to(x.dtype)], dim=1)

    def extra_repr(self) -> str:
        unbiased = ", unbiased=True" if self.unbiased else ""
        return (f"group_size={self.group_size}, num_channels={self.num_channels}, "
                f"averaging={self.averaging!r}{unbiased}")
