"""``get_dataset``, the CLI's single entry: names, paths, channels, and clear errors."""

import numpy as np
import pytest
from PIL import Image

from pygan.data import BUNDLED_NAMES, DEFAULT_DATASETS, ImageFolderDataset, PhotoCrops, UnpairedDomains, get_dataset


def test_defaults_cover_every_cli_model():
    assert set(DEFAULT_DATASETS) == {"gan", "dcgan", "wgan", "wgan-gp", "lsgan", "progan", "cyclegan"}
    assert set(DEFAULT_DATASETS.values()) <= set(BUNDLED_NAMES)
    assert DEFAULT_DATASETS["progan"] == "emoji" and DEFAULT_DATASETS["dcgan"] == "mnist"
    assert DEFAULT_DATASETS["cyclegan"] == "emoji-skin-tones"


def test_bundled_names_and_channels():
    assert get_dataset("MNIST", 32)[0][0].shape == (1, 32, 32)  # mnist is gray unless asked
    assert get_dataset("mnist", 32, channels=3)[0][0].shape == (3, 32, 32)
    assert get_dataset("emoji", 8)[0][0].shape == (3, 8, 8)
    photos = get_dataset("photos", 16, seed=5, length=12)
    assert isinstance(photos, PhotoCrops) and len(photos) == 12 and photos.seed == 5
    domains = get_dataset("emoji_skin_tones", 8, channels=1)
    assert isinstance(domains, UnpairedDomains) and domains.a[0][0].shape == (1, 8, 8)


def test_folder_paths(tmp_path):
    for name in ("a", "b"):
        Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(tmp_path / f"{name}.png")
    d = get_dataset(str(tmp_path), 8)
    assert isinstance(d, ImageFolderDataset) and len(d) == 2 and d[0][0].shape == (3, 8, 8)
    assert get_dataset(tmp_path, 8, channels=1)[0][0].shape == (1, 8, 8)


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown dataset 'celeba'.*emoji, emoji-skin-tones, mnist, photos"):
        get_dataset("celeba", 32)


def test_missing_path_is_named(tmp_path):
    missing = tmp_path / "no" / "such"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        get_dataset(missing, 32)
    with pytest.raises(FileNotFoundError, match="not-here"):
        get_dataset("./not-here", 32)


def test_folders_without_images_and_files(tmp_path):
    (tmp_path / "readme.txt").write_text("no images")
    with pytest.raises(ValueError, match="no readable images"):
        get_dataset(tmp_path, 32)
    with pytest.raises(NotADirectoryError):
        get_dataset(tmp_path / "readme.txt", 32)


def test_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="channels"):
        get_dataset("mnist", 32, channels=2)
    with pytest.raises(ValueError, match="resolution"):
        get_dataset("mnist", 0)
    with pytest.raises(ValueError, match="power of two"):
        get_dataset("mnist", 48, multires=True, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="single domain"):
        get_dataset("mnist", 32, domains=True)
    with pytest.raises(ValueError, match="two domains"):
        get_dataset("emoji-skin-tones", 32, multires=True, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="cannot be combined"):
        get_dataset("mnist", 32, multires=True, domains=True)
    assert not list(tmp_path.iterdir())  # nothing was cached by failing calls
