"""Random square crops of the colour photographs bundled with scikit-image and scikit-learn, offline.

Sources (licences as stated by the packages; see ``ATTRIBUTION.md``):

* scikit-image ``skimage.data``: ``astronaut`` (NASA, public domain), ``chelsea`` (CC0, Stefan
  van der Walt), ``coffee`` (CC0, Rachel Michetti), ``rocket`` (SpaceX, public domain),
  ``immunohistochemistry`` (no known copyright restrictions);
* scikit-learn :func:`sklearn.datasets.load_sample_images`: ``china.jpg`` (danielbuechele) and
  ``flower.jpg`` (vultilion), CC BY 2.0.

Left out on purpose: the grayscale photos (camera, coins, moon …) so that the set is uniformly
colour, and photos that are mostly a flat black background at GAN resolutions (hubble_deep_field,
retina), which would make most crops near-constant.

A :class:`PhotoCrops` dataset is a fixed list of ``length`` crops drawn once from ``seed``: the
same seed gives the same crops in any order, in any DataLoader worker, in any process.
"""

from __future__ import annotations

import functools
from importlib import metadata

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as TF

from ._images import check_channels, check_resolution, resize_square, set_channels, to_float

#: scikit-image loaders used, by name.
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry")
#: scikit-learn sample images used (all of them).
SKLEARN_PHOTOS = ("china.jpg", "flower.jpg")


@functools.lru_cache(maxsize=1)
def _load() -> tuple[tuple[str, ...], tuple[torch.Tensor, ...]]:
    """The photos as uint8 RGB tensors (3, H, W), sorted by name; loaded once per process."""
    try:
        import skimage.data
        from sklearn.datasets import load_sample_images
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("the 'photos' data set needs scikit-image and scikit-learn: "
                          "pip install scikit-image scikit-learn") from e
    photos = {f"skimage/{name}": getattr(skimage.data, name)() for name in SKIMAGE_PHOTOS}
    bunch = load_sample_images()
    for path, array in zip(bunch.filenames, bunch.images):
        name = path.replace("\\", "/").rsplit("/", 1)[-1]
        if name in SKLEARN_PHOTOS:
            photos[f"sklearn/{name}"] = array
    names = tuple(sorted(photos))
    tensors = tuple(torch.from_numpy(np.array(photos[n])).permute(2, 0, 1).contiguous() for n in names)
    for n, t in zip(names, tensors):
        if t.dtype != torch.uint8 or t.shape[0] != 3:
            raise RuntimeError(f"photo {n} is not uint8 RGB: {t.dtype} {tuple(t.shape)}")
    return names, tensors


class PhotoCrops(Dataset):
    """``length`` random square crops of the bundled photos, at ``resolution``², in [-1, 1].

    Each crop picks a photo uniformly, then a position uniformly, and cuts a ``crop_size``² square
    (default: ``resolution``, i.e. native pixels with no resampling); a larger ``crop_size`` is
    resized down to ``resolution`` with antialiasing, for wider views. Photos whose short side is
    below ``crop_size`` are upscaled to fit first. Items are ``(image, photo index)``; ``classes``
    names the photos, :meth:`crop_box` says where crop ``i`` comes from.
    """

    def __init__(self, resolution: int = 64, channels: int = 3, length: int = 10_000,
                 seed: int = 0, crop_size: int | None = None):
        self.resolution = check_resolution(resolution)
        self.channels = check_channels(channels)
        self.crop_size = check_resolution(crop_size if crop_size is not None else resolution)
        if length < 1:
            raise ValueError(f"length must be positive, got {length}")
        self.seed = int(seed)
        names, photos = _load()
        self.classes = list(names)
        self._photos = [p if min(p.shape[-2:]) >= self.crop_size
                        else TF.resize(p, [self.crop_size], antialias=True) for p in photos]

        g = torch.Generator().manual_seed(self.seed)
        self._photo = torch.randint(len(names), (length,), generator=g)
        u = torch.rand(length, 2, generator=g, dtype=torch.float64)
        sizes = torch.tensor([p.shape[-2:] for p in self._photos], dtype=torch.float64)
        room = sizes[self._photo] - self.crop_size + 1  # number of valid (top, left) positions
        self._corner = (u * room).floor().to(torch.int64)
        versions = f"skimage={metadata.version('scikit-image')}|sklearn={metadata.version('scikit-learn')}"
        self.fingerprint = (f"photos|{versions}|seed={self.seed}|n={length}|crop={self.crop_size}"
                            f"|c={self.channels}|r={self.resolution}")

    def __len__(self) -> int:
        return int(self._photo.shape[0])

    def crop_box(self, index: int) -> tuple[str, int, int, int]:
        """``(photo name, top, left, side)`` of crop ``index`` (in the possibly upscaled photo)."""
        top, left = self._corner[index].tolist()
        return self.classes[int(self._photo[index])], top, left, self.crop_size

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} crops")
        k = int(self._photo[index])
        top, left = self._corner[index].tolist()
        s = self.crop_size
        crop = self._photos[k][:, top:top + s, left:left + s]
        crop = set_channels(resize_square(crop, self.resolution), self.channels)
        return to_float(crop), k

    def __repr__(self) -> str:
        return (f"PhotoCrops(n={len(self)}, resolution={self.resolution}, crop_size={self.crop_size}, "
                f"channels={self.channels}, seed={self.seed}, photos={len(self.classes)})")


def photos(resolution: int = 64, channels: int = 3, length: int = 10_000, seed: int = 0,
           crop_size: int | None = None) -> PhotoCrops:
    """The ``photos`` set: :class:`PhotoCrops` with these arguments."""
    return PhotoCrops(resolution, channels, length, seed, crop_size)
