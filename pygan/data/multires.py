"""A multi-resolution image cache for ProGAN, built once and reused.

ProGAN trains at 4², 8², … up to its final resolution and switches resolution many times in a
run. Decoding and resizing every image at every step wastes the CPU (the bottleneck on small
machines), so :func:`build_multires` makes one pass over a source dataset, resizes every image
to ``max_resolution`` (antialiased, :func:`torchvision.transforms.v2.functional.resize`), makes
every lower power of two down to 4 from it with the official code's box-filter pyramid
(:func:`box_pyramid`: repeated 2x2 averages, as ``dataset_tool.py`` of the authors' code writes
its lower-resolution TFRecords), and stores each resolution as one uint8 array (N, C, r, r) on
disk. :meth:`MultiResCache.at` then serves any resolution as a dataset of float
images in [-1, 1] with no resizing at all.

**Storage.** One ``.npy`` file per resolution (``r0004.npy`` …), plus ``labels.npy`` and a
``manifest.json``, in a directory named after a hash of the source's fingerprint and the
resolutions. ``.npy`` rather than ``torch.save``: a ``.npy`` file can be written in batches through
a memory map and read back memory-mapped, so a set larger than RAM (CelebA's 202,599 faces are
10 GB at 128², 40 GB at 256²) never has to fit in memory; NumPy's format records shape and dtype
itself. Views are ``torch.from_numpy`` over copy-on-write maps: pages are read on demand and
shared by forked DataLoader workers.

**Atomicity.** Every file is written to a temporary name in the same directory, flushed to disk,
then moved into place with :func:`os.replace`; ``manifest.json`` goes last and is what marks a
cache as complete. A killed build leaves no manifest (and its temporary files are removed when
possible), so the next call builds again; two processes building the same cache at once both
produce identical files.

**Keys.** The source's ``fingerprint`` attribute (every pygan dataset has one: the package
versions and settings for bundled sets, the file list with sizes and mtimes for folders) or an
explicit ``key=``; failing both, the images themselves are hashed (one extra pass over the data).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from numpy.lib.format import open_memmap
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ._images import TensorImageDataset, pil_to_uint8, resize_square, to_uint8

#: Bump when the on-disk layout or the resizing changes: old caches are then rebuilt, not misread.
#: 2: lower resolutions by the box-filter pyramid (1 resized each of them bilinearly).
FORMAT_VERSION = 2
MIN_RESOLUTION = 4
MANIFEST = "manifest.json"


def default_cache_dir() -> Path:
    """``$PYGAN_CACHE_DIR``, else ``$XDG_CACHE_HOME/pygan``, else ``~/.cache/pygan``; plus ``multires``."""
    if os.environ.get("PYGAN_CACHE_DIR"):
        return Path(os.environ["PYGAN_CACHE_DIR"]).expanduser() / "multires"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pygan" / "multires"


def resolutions_up_to(max_resolution: int, min_resolution: int = MIN_RESOLUTION) -> list[int]:
    """Powers of two from ``min_resolution`` to ``max_resolution`` inclusive (both powers of two)."""
    for name, r in (("max_resolution", max_resolution), ("min_resolution", min_resolution)):
        if isinstance(r, bool) or not isinstance(r, int) or r < 1 or r & (r - 1):
            raise ValueError(f"{name} must be a power of two, got {r!r}")
    if min_resolution > max_resolution:
        raise ValueError(f"min_resolution {min_resolution} exceeds max_resolution {max_resolution}")
    return [2 ** k for k in range(int(math.log2(min_resolution)), int(math.log2(max_resolution)) + 1)]


def box_pyramid(images: torch.Tensor, resolutions: Sequence[int]) -> dict[int, torch.Tensor]:
    """uint8 images (B, C, R, R), R = max(resolutions), at every resolution in ``resolutions``.

    The official ``dataset_tool.py``: level R/2 is the mean of each 2x2 block of level R, in
    float and not rounded between levels (so level R/2^k is the mean of each 2^k x 2^k block of
    the top image); each stored level is rounded half to even (``np.rint``) and clipped to
    [0, 255]. Not bilinear: the reals at a low resolution are then exactly what training's
    real-image fade (a 2x2 average of the next resolution) blends towards.
    """
    top = images.shape[-1]
    if images.dtype != torch.uint8 or images.shape[-2] != top or max(resolutions) != top:
        raise ValueError(f"box_pyramid needs uint8 square images at the top resolution "
                         f"{max(resolutions)}; got {images.dtype} {tuple(images.shape)}")
    out, level, r = {}, images.to(torch.float64), top
    while r >= min(resolutions):
        if r in resolutions:
            out[r] = level.round().clamp_(0, 255).to(torch.uint8)
        b, c = level.shape[:2]
        level = level.reshape(b, c, r // 2, 2, r // 2, 2).mean(dim=(3, 5)) if r > 1 else level
        r //= 2
    return out


def _file_name(resolution: int) -> str:
    return f"r{resolution:04d}.npy"


class CachedImages(TensorImageDataset):
    """One resolution of a :class:`MultiResCache`: a memory-mapped uint8 array served as
    ``(float image in [-1, 1], label)``. Pickles as its file path (DataLoader workers started with
    ``spawn`` reopen the map instead of receiving a copy of the data)."""

    def __init__(self, path: Path, labels: torch.Tensor, classes: Sequence[str], fingerprint: str):
        self.path = Path(path)
        images = torch.from_numpy(np.load(self.path, mmap_mode="c"))
        super().__init__(images, labels, classes, fingerprint=fingerprint)

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["images"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.images = torch.from_numpy(np.load(self.path, mmap_mode="c"))


class MultiResCache:
    """A complete cache directory. Use :func:`build_multires` (or :meth:`build`) to get one.

    Attributes: ``directory``, ``resolutions`` (ascending), ``max_resolution``, ``channels``,
    ``classes``, ``count`` (images per resolution), ``fingerprint`` (of the source), ``built``
    (True if this call built the files, False if it reused them).
    """

    def __init__(self, directory: str | os.PathLike, *, built: bool = False):
        self.directory = Path(directory)
        manifest = _read_manifest(self.directory)
        if manifest is None:
            raise FileNotFoundError(f"no complete multi-resolution cache in {self.directory}")
        self.resolutions: list[int] = manifest["resolutions"]
        self.max_resolution = self.resolutions[-1]
        self.channels: int = manifest["channels"]
        self.classes: list[str] = manifest["classes"]
        self.count: int = manifest["count"]
        self.fingerprint: str = manifest["fingerprint"]
        self.built = built
        self._labels = torch.from_numpy(np.load(self.directory / "labels.npy"))
        self._views: dict[int, CachedImages] = {}

    @classmethod
    def build(cls, source, max_resolution: int, cache_dir=None, **kwargs) -> MultiResCache:
        """Same as :func:`build_multires`."""
        return build_multires(source, max_resolution, cache_dir, **kwargs)

    def path(self, resolution: int) -> Path:
        """The ``.npy`` file holding ``resolution``."""
        if resolution not in self.resolutions:
            raise ValueError(f"resolution {resolution} is not cached; cached: {self.resolutions}")
        return self.directory / _file_name(resolution)

    def at(self, resolution: int) -> CachedImages:
        """The images at ``resolution``² as a dataset of ``(float image in [-1, 1], label)``."""
        if resolution not in self._views:
            self._views[resolution] = CachedImages(self.path(resolution), self._labels, self.classes,
                                                   f"{self.fingerprint}|multires-r={resolution}")
        return self._views[resolution]

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        return (f"MultiResCache({str(self.directory)!r}, n={self.count}, channels={self.channels}, "
                f"resolutions={self.resolutions}, built={self.built})")


def build_multires(source: Dataset | Sequence, max_resolution: int,
                   cache_dir: str | os.PathLike | None = None, *, key: str | None = None,
                   min_resolution: int = MIN_RESOLUTION, batch_size: int = 64, num_workers: int = 0,
                   progress: bool | None = None, rebuild: bool = False) -> MultiResCache:
    """The multi-resolution cache of ``source``, built on the first call and reused afterwards.

    ``source`` is a dataset (items ``(image, label)`` or ``image``) or a list of images; an image
    is a float tensor in [-1, 1] or a uint8 tensor, (C, H, W) with C = 1 or 3, or a PIL image.
    Images that are not ``max_resolution``² are first resized on the short side and
    center-cropped to it; every lower resolution is then the box-filter pyramid of that image
    (:func:`box_pyramid`). ``num_workers``
    decodes in parallel (folder sources). ``rebuild=True`` rebuilds even a complete cache.
    """
    resolutions = resolutions_up_to(max_resolution, min_resolution)
    dataset = source if isinstance(source, Dataset) else _ListDataset(list(source))
    fingerprint = key or getattr(dataset, "fingerprint", None) or _content_hash(dataset)
    digest = hashlib.sha256(json.dumps([FORMAT_VERSION, fingerprint, resolutions]).encode()).hexdigest()
    prefix = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(fingerprint).split("|", 1)[0])[:40] or "data"
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    directory = directory / f"{prefix}-{digest[:20]}"

    manifest = _read_manifest(directory)
    if (not rebuild and manifest is not None and manifest.get("fingerprint") == fingerprint
            and manifest.get("resolutions") == resolutions):
        return MultiResCache(directory, built=False)
    directory.mkdir(parents=True, exist_ok=True)
    _build(dataset, resolutions, directory, fingerprint, batch_size, num_workers, progress)
    return MultiResCache(directory, built=True)


def _build(dataset: Dataset, resolutions: list[int], directory: Path, fingerprint: str,
           batch_size: int, num_workers: int, progress: bool | None) -> None:
    n = len(dataset)
    if n == 0:
        raise ValueError("cannot cache an empty dataset")
    top = resolutions[-1]
    (directory / MANIFEST).unlink(missing_ok=True)  # the old cache (if any) is no longer complete
    tag = f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    temps = {r: directory / (_file_name(r) + tag) for r in resolutions}
    arrays: dict[int, np.memmap] = {}
    try:
        labels = np.zeros(n, dtype=np.int64)
        channels = None
        done = 0
        with tqdm(total=n, desc=f"caching {len(resolutions)} resolutions up to {top}", unit="img",
                  disable=(n < 2000) if progress is None else not progress) as bar:
            for images, batch_labels in _batches(dataset, top, batch_size, num_workers):
                if channels is None:  # the first batch tells the channel count
                    channels = int(images.shape[1])
                    arrays = {r: open_memmap(temps[r], mode="w+", dtype=np.uint8, shape=(n, channels, r, r))
                              for r in resolutions}
                if images.shape[1] != channels:
                    raise ValueError(f"images {done}…{done + len(images) - 1} have {images.shape[1]} "
                                     f"channels, the first has {channels}")
                if done + len(images) > n:
                    raise RuntimeError(f"the source yields more images than its length {n}")
                pyramid = box_pyramid(resize_square(images, top), resolutions)
                for r in resolutions:
                    arrays[r][done:done + len(images)] = pyramid[r].numpy()
                labels[done:done + len(images)] = batch_labels.numpy()
                done += len(images)
                bar.update(len(images))
        if done != n:
            raise RuntimeError(f"the source yielded {done} images, its length is {n}")
        for r in resolutions:
            arrays[r].flush()
            _fsync(temps[r])
        del arrays
        for r in resolutions:
            os.replace(temps[r], directory / _file_name(r))
        _atomic_write(directory / "labels.npy", lambda f: np.save(f, labels))
        classes = [str(c) for c in getattr(dataset, "classes", None) or ["image"]]
        manifest = {"format": FORMAT_VERSION, "fingerprint": fingerprint, "resolutions": resolutions,
                    "count": n, "channels": int(channels), "classes": classes, "dtype": "uint8",
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        _atomic_write(directory / MANIFEST, lambda f: f.write(json.dumps(manifest, indent=1).encode()))
    finally:
        for t in temps.values():
            t.unlink(missing_ok=True)


def _read_manifest(directory: Path) -> dict | None:
    """The manifest if ``directory`` holds a complete cache of the current format, else None."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
        if manifest.get("format") != FORMAT_VERSION:
            return None
        n, c = manifest["count"], manifest["channels"]
        for r in manifest["resolutions"]:
            array = np.load(directory / _file_name(r), mmap_mode="r")
            if array.dtype != np.uint8 or array.shape != (n, c, r, r):
                return None
        if np.load(directory / "labels.npy", mmap_mode="r").shape != (n,):
            return None
        return manifest
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _fsync(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _atomic_write(path: Path, write: Callable) -> None:
    temp = path.with_name(path.name + f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        with open(temp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def _split(sample) -> tuple[torch.Tensor, int]:
    """One dataset item as (uint8 (C, H, W) image, label), validated."""
    image, label = sample if isinstance(sample, (tuple, list)) else (sample, 0)
    if isinstance(image, Image.Image):
        image = pil_to_uint8(image, 1 if image.mode in ("1", "L", "I", "F", "I;16") else 3)
    if not isinstance(image, torch.Tensor) or image.dim() != 3 or image.shape[0] not in (1, 3):
        raise TypeError("images must be (C, H, W) tensors with 1 or 3 channels or PIL images, got "
                        f"{type(image).__name__} {tuple(getattr(image, 'shape', ()))}")
    return to_uint8(image), int(label)


def _as_uint8(sample, resolution: int) -> tuple[torch.Tensor, int]:
    """One dataset item as (uint8 (C, resolution, resolution), label)."""
    image, label = _split(sample)
    return resize_square(image, resolution), label


def _batches(dataset: Dataset, resolution: int, batch_size: int, num_workers: int):
    """(uint8 (B, C, r, r), int64 labels) batches in order. Datasets that already hold uint8
    tensors are sliced directly (exact, no decoding); others go through a DataLoader."""
    if isinstance(dataset, TensorImageDataset):
        for start in range(0, len(dataset), batch_size):
            stop = min(start + batch_size, len(dataset))
            yield resize_square(dataset.images[start:stop], resolution), dataset.labels[start:stop]
        return
    yield from DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                          collate_fn=_Collate(resolution))


class _Collate:
    """Batches items as (uint8 (B, C, r, r), int64 labels); a class so that it pickles for workers."""

    def __init__(self, resolution: int):
        self.resolution = resolution

    def __call__(self, batch):
        pairs = [_as_uint8(s, self.resolution) for s in batch]
        if len({p[0].shape[0] for p in pairs}) > 1:
            raise ValueError("the images of one batch have different numbers of channels: "
                             f"{[p[0].shape[0] for p in pairs]}")
        return torch.stack([p[0] for p in pairs]), torch.tensor([p[1] for p in pairs], dtype=torch.int64)


class _ListDataset(Dataset):
    def __init__(self, items: list):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        return self.items[index]


def _content_hash(dataset: Dataset) -> str:
    """A fingerprint from the images themselves, for sources that carry none."""
    h = hashlib.sha256()
    for i in range(len(dataset)):
        image, label = _split(dataset[i])
        h.update(f"{tuple(image.shape)}|{label}|".encode())
        h.update(image.contiguous().numpy().tobytes())
    return f"content|{h.hexdigest()}"
