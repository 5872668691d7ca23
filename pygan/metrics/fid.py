r"""Fréchet distance (FID) and kernel distance (KID) between two sets of features, with
torchmetrics' ``FrechetInceptionDistance`` and ``KernelInceptionDistance`` doing the statistics.

* FID (Heusel et al., *GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
  Equilibrium*, NeurIPS 2017): fit a Gaussian to each feature set,
  :math:`\mathrm{FID} = \lVert\mu_r - \mu_f\rVert^2 + \operatorname{Tr}(\Sigma_r + \Sigma_f
  - 2(\Sigma_r\Sigma_f)^{1/2})`. Biased for small sets: compare values at the same ``n``.
* KID (Bińkowski et al., *Demystifying MMD GANs*, ICLR 2018): the unbiased squared MMD with the
  cubic polynomial kernel :math:`k(x, y) = (x^\top y / d + 1)^3`, averaged over ``subsets``
  random subsets of ``subset_size`` features per set; returns (mean, std). Unbiased, so near 0
  (possibly slightly negative) for sets from one distribution.

Features come from a module of :mod:`pygan.metrics.features`; :func:`fid_kid_from_features`
takes features already extracted (so FID, KID and precision/recall share one extraction): it gives
torchmetrics an identity ``feature`` module and updates it with the features.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from ._checks import positive_int
from .features import extract


class _Precomputed(nn.Module):
    """Identity 'feature extractor': torchmetrics receives features instead of images."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _check_features(real: torch.Tensor, fake: torch.Tensor) -> None:
    for name, f in (("real", real), ("fake", fake)):
        if not isinstance(f, torch.Tensor) or f.ndim != 2 or not f.is_floating_point():
            raise ValueError(f"{name} features must be a float tensor (N, F), got "
                             f"{tuple(f.shape) if isinstance(f, torch.Tensor) else type(f).__name__}")
        if f.shape[0] < 2:
            raise ValueError(f"{name} features must hold at least 2 rows, got {f.shape[0]}")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"real and fake features must have the same width, got {real.shape[1]} and {fake.shape[1]}")


def fid_from_features(real: torch.Tensor, fake: torch.Tensor) -> float:
    """FID between feature sets ``real`` (N, F) and ``fake`` (M, F), N, M >= 2."""
    _check_features(real, fake)
    # sync_on_compute=False: the sets are this process's own; under torchrun a sync would wait
    # for ranks that are not evaluating (training-time evaluation runs on rank 0 only)
    metric = FrechetInceptionDistance(feature=_Precomputed(real.shape[1]), sync_on_compute=False)
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    return float(metric.compute())


def kid_from_features(real: torch.Tensor, fake: torch.Tensor, *, subsets: int = 100,
                      subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """KID (mean, std over subsets) between feature sets; ``subset_size`` is capped at the smaller
    set's size. ``seed`` fixes the subsets (the global RNG is left as it was)."""
    _check_features(real, fake)
    subsets = positive_int(subsets, "subsets")
    subset_size = min(positive_int(subset_size, "subset_size"), real.shape[0], fake.shape[0])
    with warnings.catch_warnings():  # "will save all extracted features": here they are the input
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        metric = KernelInceptionDistance(feature=_Precomputed(real.shape[1]), subsets=subsets,
                                         subset_size=subset_size, sync_on_compute=False)
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        mean, std = metric.compute()
    return float(mean), float(std)


def fid(real, fake, extractor: nn.Module, *, batch_size: int = 256) -> float:
    """FID between image sets ``real`` and ``fake`` on the features of ``extractor``."""
    return fid_from_features(extract(extractor, real, batch_size), extract(extractor, fake, batch_size))


def kid(real, fake, extractor: nn.Module, *, subsets: int = 100, subset_size: int = 1000,
        seed: int = 0, batch_size: int = 256) -> tuple[float, float]:
    """KID (mean, std) between image sets on the features of ``extractor``."""
    return kid_from_features(extract(extractor, real, batch_size), extract(extractor, fake, batch_size),
                             subsets=subsets, subset_size=subset_size, seed=seed)
