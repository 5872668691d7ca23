"""A folder of images as a dataset (``--data PATH``), with or without class subfolders.

Layouts (``layout="auto"`` picks between the first two):

* **classes** — ``root/<class>/**/<image>``, like :class:`torchvision.datasets.ImageFolder`:
  every immediate subfolder that holds images (at any depth) is a class, sorted by name; images
  lying directly in ``root`` are then ignored, with a warning.
* **flat** — images anywhere under ``root`` (CelebA's ``img_align_celeba/``, for example), one
  class. ``auto`` chooses it when no subfolder holds images.

Images are recognised by torchvision's ``IMG_EXTENSIONS``; hidden files and folders are skipped.
Each image is decoded with PIL (transparency composited onto a fixed background, as for the
emoji), resized on its short side with antialiasing and center-cropped to ``resolution``², and
returned as float32 in [-1, 1].

**Unreadable files never crash a run.** They are looked for when the dataset is built
(``check="header"``: PIL opens and verifies every file, which catches non-images, empty files
and broken or truncated PNGs; ``check="decode"`` decodes every file, which also catches truncated
JPEGs but is slower; ``check="none"`` skips this) and reported once through
:class:`UnreadableImageWarning` with the count and the first paths. A file that still fails when it
is read (a truncated JPEG under ``check="header"``, a file changed on disk) is reported the same
way once and replaced by the next readable image, so the epoch goes on.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS, has_file_allowed_extension
from tqdm.auto import tqdm

from ._images import WHITE, check_channels, check_resolution, pil_to_uint8, resize_square, to_float
from .domains import UnpairedDomains

#: How many paths a warning about unreadable files lists.
REPORTED_PATHS = 5

_LAYOUTS = ("auto", "flat", "classes")
_CHECKS = ("header", "decode", "none")


class UnreadableImageWarning(UserWarning):
    """Some image files could not be read and were skipped."""


def _visible(name: str) -> bool:
    return not name.startswith(".")


def _images_under(folder: str) -> list[str]:
    """Image files anywhere under ``folder``, sorted, hidden files and folders left out."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if _visible(d))
        found.extend(os.path.join(dirpath, f) for f in filenames
                     if _visible(f) and has_file_allowed_extension(f, IMG_EXTENSIONS))
    return sorted(found)


def _subfolders(root: str) -> list[str]:
    return sorted(e.name for e in os.scandir(root) if e.is_dir() and _visible(e.name))


def _open(path: str, channels: int, background: tuple[int, int, int], draft_size: int) -> torch.Tensor:
    """Decode one file to uint8 (channels, H, W). JPEGs are decoded at a reduced scale when they
    are much larger than needed (PIL's ``draft`` keeps both sides >= ``draft_size``)."""
    with Image.open(path) as img:
        img.draft(None, (draft_size, draft_size))
        img = ImageOps.exif_transpose(img)
        return pil_to_uint8(img, channels, background)


def _describe(error: Exception, path: str) -> str:
    """``Type: message`` with the path (already listed beside it) taken out of the message."""
    message = " ".join(str(error).replace(repr(path), "").replace(path, "").split())
    return f"{type(error).__name__}: {message}"


def _check(path: str, how: str) -> str | None:
    """None if ``path`` passes the ``how`` check, else the error as text."""
    try:
        with Image.open(path) as img:
            if how == "header":
                img.verify()
            else:
                img.load()
        return None
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, struct.error … on bad files
        return _describe(e, path)


def _report(bad: list[tuple[str, str]], total: int, where: str, stacklevel: int = 3) -> None:
    listed = "\n  ".join(f"{p} ({err})" for p, err in bad[:REPORTED_PATHS])
    more = f"\n  … and {len(bad) - REPORTED_PATHS} more" if len(bad) > REPORTED_PATHS else ""
    warnings.warn(f"skipped {len(bad)} unreadable image file(s) of {total} under {where}:\n  {listed}{more}",
                  UnreadableImageWarning, stacklevel=stacklevel)


class ImageFolderDataset(Dataset):
    """Images under ``root`` at ``resolution``², in [-1, 1]; items are ``(image, class index)``.

    Attributes: ``samples`` (readable ``(path, class index)`` pairs), ``classes``,
    ``class_to_idx``, ``skipped`` (``(path, error)`` for every file left out), ``layout``
    (``"flat"`` or ``"classes"``) and ``fingerprint`` (identifies the files and settings; the
    multi-resolution cache keys on it).

    Raises FileNotFoundError / NotADirectoryError for a bad ``root`` and ValueError when no
    readable image is found.
    """

    def __init__(self, root: str | os.PathLike, resolution: int, channels: int = 3, *,
                 layout: str = "auto", check: str = "header",
                 background: tuple[int, int, int] = WHITE, progress: bool | None = None):
        self.root = os.path.abspath(os.path.expanduser(os.fspath(root)))
        self.resolution = check_resolution(resolution)
        self.channels = check_channels(channels)
        self.background = tuple(int(v) for v in background)
        if layout not in _LAYOUTS:
            raise ValueError(f"layout must be one of {_LAYOUTS}, got {layout!r}")
        if check not in _CHECKS:
            raise ValueError(f"check must be one of {_CHECKS}, got {check!r}")
        if not os.path.exists(self.root):
            raise FileNotFoundError(f"image folder not found: {self.root}")
        if not os.path.isdir(self.root):
            raise NotADirectoryError(f"not a folder of images: {self.root}")

        candidates, self.classes, self.layout = self._scan(layout)
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.skipped: list[tuple[str, str]] = []
        if check != "none":
            good = []
            for path, label in tqdm(candidates, desc=f"checking images in {self.root}", unit="file",
                                    disable=(len(candidates) < 1000) if progress is None else not progress):
                error = _check(path, check)
                if error is None:
                    good.append((path, label))
                else:
                    self.skipped.append((path, error))
            candidates = good
        self.samples: list[tuple[str, int]] = candidates
        if self.skipped:
            _report(self.skipped, len(self.samples) + len(self.skipped), self.root)
        if not self.samples:
            raise ValueError(f"no readable images under {self.root} (looked for {', '.join(IMG_EXTENSIONS)}"
                             f"{'; ' + str(len(self.skipped)) + ' unreadable' if self.skipped else ''})")
        self._bad_at_read: set[int] = set()
        self._fingerprint: str | None = None

    def _scan(self, layout: str) -> tuple[list[tuple[str, int]], list[str], str]:
        per_class = {}
        if layout != "flat":
            for name in _subfolders(self.root):
                files = _images_under(os.path.join(self.root, name))
                if files:
                    per_class[name] = files
            if layout == "classes" and not per_class:
                raise ValueError(f"no class subfolder with images under {self.root}")
        if not per_class:  # flat
            return [(p, 0) for p in _images_under(self.root)], [os.path.basename(self.root)], "flat"
        loose = [f for f in os.listdir(self.root) if _visible(f) and has_file_allowed_extension(f, IMG_EXTENSIONS)]
        if loose:
            warnings.warn(f"{len(loose)} image(s) directly in {self.root} are ignored: it has class "
                          f"subfolders ({', '.join(list(per_class)[:5])}…); pass layout='flat' to use "
                          "every image as one class", UserWarning, stacklevel=3)
        classes = list(per_class)
        return [(p, i) for i, c in enumerate(classes) for p in per_class[c]], classes, "classes"

    @property
    def fingerprint(self) -> str:
        """Hash of every sample's relative path, size, mtime and label, plus the settings."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            h.update(f"folder|{self.root}|c={self.channels}|r={self.resolution}|bg={self.background}|"
                     f"{self.layout}|{self.classes}".encode())
            for path, label in self.samples:
                st = os.stat(path)
                h.update(f"\n{os.path.relpath(path, self.root)}|{st.st_size}|{st.st_mtime_ns}|{label}".encode())
            self._fingerprint = f"folder|{self.root}|{h.hexdigest()}"
        return self._fingerprint

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> torch.Tensor:
        """Sample ``index`` as uint8 (channels, resolution, resolution); raises if unreadable."""
        path, _ = self.samples[index]
        return resize_square(_open(path, self.channels, self.background, self.resolution), self.resolution)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        n = len(self.samples)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} images")
        index %= n
        for step in range(n):
            i = (index + step) % n
            if i in self._bad_at_read:
                continue
            try:
                image = self.load(i)
            except Exception as e:  # an unreadable file must not end the run (see module docstring)
                self._bad_at_read.add(i)
                _report([(self.samples[i][0], _describe(e, self.samples[i][0]))], n, self.root, stacklevel=2)
                continue
            return to_float(image), self.samples[i][1]
        raise RuntimeError(f"none of the {n} images under {self.root} could be read")

    def __repr__(self) -> str:
        return (f"ImageFolderDataset({self.root!r}, n={len(self)}, layout={self.layout}, "
                f"classes={len(self.classes)}, resolution={self.resolution}, channels={self.channels}, "
                f"skipped={len(self.skipped)})")


#: The authors' two-domain layout (datasets/<name>/trainA, trainB, testA, testB).
SPLIT_FOLDERS = {"train": ("trainA", "trainB"), "test": ("testA", "testB")}


def _folder(root: str | os.PathLike) -> str:
    path = os.path.abspath(os.path.expanduser(os.fspath(root)))
    if not os.path.exists(path):
        raise FileNotFoundError(f"image folder not found: {path}")
    if not os.path.isdir(path):
        raise NotADirectoryError(f"not a folder of images: {path}")
    return path


def domain_folders(root: str | os.PathLike, split: str = "train") -> tuple[str, str] | None:
    """The folders of domains A and B under ``root`` for ``split`` (``"train"`` or ``"test"``),
    looking only at file names (nothing is decoded).

    * ``root/trainA``, ``trainB`` (and optionally ``testA``, ``testB``), the authors' layout:
      each split needs both of its folders, each holding images;
    * otherwise exactly two image subfolders (``A``/``B``, ``horses``/``zebras`` …, sorted by
      name: the first is A), which are the training split.

    Returns None for ``split="test"`` when there is no test split. Raises FileNotFoundError /
    NotADirectoryError for a bad ``root`` and ValueError, naming the folder, for a half split
    (``trainA`` without ``trainB``), an empty domain folder, or no usable layout.
    """
    if split not in SPLIT_FOLDERS:
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}")
    path = _folder(root)
    split_names = [n for pair in SPLIT_FOLDERS.values() for n in pair]
    present = {n for n in split_names if os.path.isdir(os.path.join(path, n))}
    if present:
        for which, (a, b) in SPLIT_FOLDERS.items():      # a half split is an error in either
            if (a in present) != (b in present):
                have, lack = (a, b) if a in present else (b, a)
                raise ValueError(f"{path} has {have}/ but no {lack}/: the {which} split needs both "
                                 "domains")
        a, b = SPLIT_FOLDERS[split]
        if a not in present:
            if split == "test":
                return None
            raise ValueError(f"{path} has {', '.join(sorted(present))} but no trainA/ and trainB/ "
                             "to train on")
        for name in (a, b):
            if not _images_under(os.path.join(path, name)):
                raise ValueError(f"{os.path.join(path, name)} holds no images (looked for "
                                 f"{', '.join(IMG_EXTENSIONS)})")
        return os.path.join(path, a), os.path.join(path, b)
    if split == "test":
        return None
    names = [n for n in _subfolders(path) if _images_under(os.path.join(path, n))]
    if len(names) != 2:
        raise ValueError(f"two-domain data needs trainA/ and trainB/ or exactly two subfolders with "
                         f"images under {path}, found {len(names)}: {names}")
    return os.path.join(path, names[0]), os.path.join(path, names[1])


def check_image_folder(root: str | os.PathLike) -> str:
    """``root`` as an absolute path if it holds at least one image file (by name; nothing is
    decoded), else FileNotFoundError / NotADirectoryError / ValueError naming it."""
    path = _folder(root)
    if not _images_under(path):
        raise ValueError(f"{path} holds no images (looked for {', '.join(IMG_EXTENSIONS)})")
    return path


def folder_domains(root: str | os.PathLike, resolution: int, channels: int = 3, *,
                   check: str = "header", background: tuple[int, int, int] = WHITE,
                   split: str = "train") -> UnpairedDomains:
    """Two unpaired domains from a folder (layouts: :func:`domain_folders`), every image at
    ``resolution``². No ground-truth pairs. ValueError for ``split="test"`` without a test split."""
    folders = domain_folders(root, split)
    if folders is None:
        raise ValueError(f"{_folder(root)} has no testA/ and testB/ folders")
    a, b = (ImageFolderDataset(Path(f), resolution, channels, layout="flat", check=check,
                               background=background) for f in folders)
    return UnpairedDomains(a=a, b=b, pairs=None,
                           domain_names=(os.path.basename(folders[0]), os.path.basename(folders[1])))
