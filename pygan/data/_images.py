"""Shared image plumbing for every data source: PIL → uint8 tensor, uint8 ↔ [-1, 1] floats,
antialiased batch resizing, and the in-memory dataset all bundled sets are returned as.

Every source in :mod:`pygan.data` keeps its pixels as ``uint8`` (N, C, H, W) and converts one
image at a time to ``float32`` in [-1, 1] (the range of a tanh generator). uint8 storage is 4×
smaller than float32 and is what the multi-resolution cache writes to disk, so the same class
serves the in-memory bundled sets and the memory-mapped cache views.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as TF

#: Background that transparent pixels are composited onto (see :func:`pil_to_uint8`).
WHITE = (255, 255, 255)


def check_channels(channels: int) -> int:
    """1 (grayscale) or 3 (RGB): the only channel counts the models take."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    return channels


def check_resolution(resolution: int) -> int:
    """A positive integer side length."""
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise ValueError(f"resolution must be a positive integer, got {resolution!r}")
    return resolution


def pil_to_uint8(img: Image.Image, channels: int = 3,
                 background: tuple[int, int, int] = WHITE) -> torch.Tensor:
    """A PIL image as a uint8 tensor (channels, H, W).

    Images with transparency (RGBA, LA, palette images with a transparent index) are composited
    onto the fixed ``background`` colour first: the colour stored under fully transparent pixels
    is arbitrary (often black), so simply dropping alpha would show junk. RGB → 1 channel uses
    PIL's ITU-R 601-2 luma; 1 channel → RGB repeats the channel.
    """
    has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode in ("P", "L", "RGB")
                                                      and "transparency" in img.info)
    if has_alpha:
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, tuple(background) + (255,))
        img = Image.alpha_composite(canvas, rgba)
    img = img.convert("RGB" if channels == 3 else "L")
    return TF.pil_to_tensor(img)


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] → float32 [-1, 1] (0 → -1, 255 → +1 exactly)."""
    return images.to(torch.float32).div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] → uint8 [0, 255], rounded; uint8 input is returned unchanged."""
    if images.dtype == torch.uint8:
        return images
    return images.detach().to(torch.float32).add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)


def set_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """uint8 (..., C, H, W) with C in {1, 3} converted to ``channels`` (luma or repetition)."""
    c = images.shape[-3]
    if c == channels:
        return images
    if c == 3 and channels == 1:
        return TF.rgb_to_grayscale(images, num_output_channels=1)
    if c == 1 and channels == 3:
        return images.expand(*images.shape[:-3], 3, *images.shape[-2:]).contiguous()
    raise ValueError(f"cannot convert {c} channels to {channels}")


def resize_square(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """Antialiased bilinear resize of (..., C, H, W) to ``resolution``² (no-op when equal).

    Non-square inputs are resized on the short side and center-cropped, like the folder loader.
    """
    h, w = images.shape[-2:]
    if h == w == resolution:
        return images
    if h != w:
        images = TF.resize(images, [resolution], antialias=True)
        return TF.center_crop(images, [resolution, resolution])
    return TF.resize(images, [resolution, resolution], antialias=True)


class TensorImageDataset(Dataset):
    """uint8 images (N, C, H, W) held in a tensor; item ``i`` is ``(float image in [-1, 1], label)``.

    Attributes: ``images`` (the uint8 tensor, for fast batched access), ``labels`` (int64, N),
    ``classes`` (names of the label values), ``names`` (one identifier per image, or None) and
    ``fingerprint`` (a string that identifies the content; the multi-resolution cache keys on it).
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None = None,
                 classes: Sequence[str] = ("image",), names: Sequence[str] | None = None,
                 fingerprint: str | None = None):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if labels is None:
            labels = torch.zeros(images.shape[0], dtype=torch.int64)
        if labels.shape != (images.shape[0],):
            raise ValueError(f"labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}")
        if names is not None and len(names) != images.shape[0]:
            raise ValueError("names must hold one entry per image")
        self.images = images
        self.labels = labels.to(torch.int64)
        self.classes = list(classes)
        self.names = list(names) if names is not None else None
        self.fingerprint = fingerprint

    @property
    def resolution(self) -> int:
        return int(self.images.shape[-1])

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return to_float(self.images[index]), int(self.labels[index])

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(n={len(self)}, channels={self.channels}, "
                f"resolution={self.resolution}, classes={len(self.classes)})")
