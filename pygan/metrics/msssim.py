r"""MS-SSIM between images, and the diversity measure built on it: the mean MS-SSIM over random
pairs of *generated* samples (Odena et al., *Conditional Image Synthesis with Auxiliary Classifier
GANs*, ICML 2017; used by Karras et al., ProGAN, ICLR 2018, §5). Lower means more diverse; a
collapsed generator scores near 1.

MS-SSIM (Wang, Simoncelli & Bovik, 2003): with SSIM's luminance term :math:`l`, and its
contrast-structure term :math:`cs_j` at scale :math:`j` (the image average-pooled :math:`j-1`
times by 2),

.. math:: \mathrm{MS\text{-}SSIM}(x, y) = l_M(x, y)^{\beta_M} \prod_{j=1}^{M} cs_j(x, y)^{\beta_j}

computed by ``torchmetrics.functional.multiscale_structural_similarity_index_measure``
(Gaussian window, ``data_range`` 2 for pygan's [-1, 1] images, ``normalize="relu"`` so that
negative terms at coarse scales cannot make the product NaN).

**Small images.** The standard setting (5 scales, 11×11 window with σ = 1.5, weights
:math:`\beta` = 0.0448, 0.2856, 0.3001, 0.2363, 0.1333) needs images larger than 160 pixels.
:func:`small_image_settings` adapts it: ``M = min(5, log2(r) - 2)`` scales (32 → 3, 64 → 4,
128 → 5) so the coarsest scale is 8 pixels wide, a 7×7 window with σ = 1.0 (the same
window-to-σ ratio) below 256 pixels, and the first ``M`` standard weights renormalised to sum to 1.
From 256 pixels up it is the standard setting.
"""

from __future__ import annotations

import torch
from torchmetrics.functional.image import multiscale_structural_similarity_index_measure as _ms_ssim

from ._checks import as_float_images, positive_int

STANDARD_BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
MIN_RESOLUTION = 16


def small_image_settings(resolution: int) -> dict:
    """``kernel_size``, ``sigma`` and ``betas`` for MS-SSIM on ``resolution``² images (see the
    module docstring). Raises ValueError below 16 pixels."""
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < MIN_RESOLUTION:
        raise ValueError(f"resolution must be an int >= {MIN_RESOLUTION} for MS-SSIM, got {resolution!r}")
    if resolution >= 256:
        return {"kernel_size": 11, "sigma": 1.5, "betas": STANDARD_BETAS}
    scales = max(2, min(5, resolution.bit_length() - 1 - 2))
    betas = STANDARD_BETAS[:scales]
    total = sum(betas)
    return {"kernel_size": 7, "sigma": 1.0, "betas": tuple(b / total for b in betas)}


def ms_ssim(x, y, *, reduction: str = "none") -> torch.Tensor:
    """MS-SSIM of each pair ``(x[i], y[i])`` (float images in [-1, 1] or uint8), with the settings
    of :func:`small_image_settings` for their size. ``reduction``: ``"none"`` (a value per pair) or
    ``"mean"``."""
    x = as_float_images(x, "x", min_size=MIN_RESOLUTION)
    y = as_float_images(y, "y", min_size=MIN_RESOLUTION)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if reduction not in ("none", "mean"):
        raise ValueError(f"reduction must be 'none' or 'mean', got {reduction!r}")
    settings = small_image_settings(min(x.shape[-2:]))
    values = _ms_ssim(x, y.to(x.device), data_range=2.0, normalize="relu", reduction="none", **settings)
    return values.mean() if reduction == "mean" else values


def msssim_diversity(images, *, pairs: int = 1000, seed: int = 0, batch_size: int = 256) -> float:
    """Mean MS-SSIM over ``pairs`` random pairs of distinct images of ``images`` (N >= 2), drawn
    with ``seed``. Lower = more diverse. The real data's own value is the reference: a generator
    that matches the data's variety scores close to it, a collapsed one close to 1."""
    images = as_float_images(images, "images", min_size=MIN_RESOLUTION)
    pairs = positive_int(pairs, "pairs")
    batch_size = positive_int(batch_size, "batch_size")
    n = images.shape[0]
    if n < 2:
        raise ValueError(f"images must hold at least 2 images to form pairs, got {n}")
    gen = torch.Generator().manual_seed(int(seed))
    i = torch.randint(0, n, (pairs,), generator=gen)
    j = (i + torch.randint(1, n, (pairs,), generator=gen)) % n   # j != i
    total = 0.0
    with torch.no_grad():
        for s in range(0, pairs, batch_size):
            total += float(ms_ssim(images[i[s:s + batch_size]], images[j[s:s + batch_size]]).sum())
    return total / pairs
