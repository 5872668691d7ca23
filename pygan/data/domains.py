"""Two-domain (unpaired translation) data as CycleGAN consumes it: the container, and the
authors' training augmentation (resize to r·286/256, random r² crop, left-right flip with p = 1/2)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import Dataset


@dataclass(frozen=True)
class UnpairedDomains:
    """Two image domains for unpaired translation (CycleGAN).

    Train on ``a`` and ``b`` sampled independently (two shuffled loaders). ``pairs`` lists
    ground-truth correspondences ``(index in a, index in b)`` kept for evaluation only, or is None
    when the domains have none (two folders of images). ``domain_names`` names A and B.
    """

    a: Dataset
    b: Dataset
    pairs: list[tuple[int, int]] | None = None
    domain_names: tuple[str, str] = ("A", "B")


# --- CycleGAN's augmentation (the authors' data/base_dataset.py get_params / get_transform) -----

#: ``--preprocess`` choices pygan implements. ``resize_and_crop`` (the authors' default): images are
#: loaded at ``load_size``² and each training image is a random ``crop_size``² window of it;
#: ``none``: images are loaded at ``crop_size``² and used whole. The authors' ``crop``,
#: ``scale_width`` and ``scale_width_and_crop`` keep each image's own size or aspect ratio, which
#: pygan's fixed-size image stores do not, so they are refused with that reason.
PREPROCESS = ("resize_and_crop", "none")
UNSUPPORTED_PREPROCESS = ("crop", "scale_width", "scale_width_and_crop")


def default_load_size(crop_size: int) -> int:
    """The authors' jitter scaled to any crop: load at round(crop * 286 / 256) (286 for 256)."""
    return int(round(crop_size * 286 / 256))


def load_size(crop_size: int, preprocess: str, load: int | None = None) -> int:
    """Side the training images are stored at: ``load`` (default :func:`default_load_size`) for
    ``resize_and_crop``, ``crop_size`` for ``none``."""
    if preprocess not in PREPROCESS:
        raise ValueError(f"preprocess must be one of {', '.join(PREPROCESS)}; got {preprocess!r}")
    if preprocess == "none":
        return crop_size
    return default_load_size(crop_size) if load is None else int(load)


def random_crop_flip(images: torch.Tensor, crop_size: int, flip: bool,
                     generator: torch.Generator) -> tuple[torch.Tensor, dict]:
    """Per image of ``images`` (N, C, L, L): a ``crop_size``² window at offsets (y, x) drawn
    uniformly from {0, …, L - crop_size} (the authors' ``random.randint(0, L - crop)``), then,
    with ``flip``, a left-right mirror with probability 1/2 (their ``random.random() > 0.5``).
    Draws come from ``generator`` (CPU) in a fixed order (all y, all x, all flips), so a run is
    reproducible and resumable. Returns the (N, C, crop, crop) batch and the draws
    ``{"y", "x", "flip"}`` (tensors of N) for inspection."""
    n, _, h, w = images.shape
    if crop_size > min(h, w):
        raise ValueError(f"crop_size {crop_size} exceeds the {h}x{w} images")
    ys = torch.randint(0, h - crop_size + 1, (n,), generator=generator)
    xs = torch.randint(0, w - crop_size + 1, (n,), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5 if flip else torch.zeros(n, dtype=torch.bool)
    out = []
    for i in range(n):
        y, x = int(ys[i]), int(xs[i])
        window = images[i, :, y:y + crop_size, x:x + crop_size]
        out.append(window.flip(-1) if flips[i] else window)
    return torch.stack(out), {"y": ys, "x": xs, "flip": flips}
