"""The ProGAN multi-resolution cache: built once, reused, uint8 on disk, right shapes and values at
every resolution, atomic (no half-written cache is ever used)."""

import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as TF

from pygan.data import MultiResCache, TensorImageDataset, build_multires, get_dataset, resolutions_up_to
from pygan.data.multires import MANIFEST


class CountingImages(Dataset):
    """Float images in [-1, 1] from uint8 pixels; counts reads; fails at ``fail_at`` if set."""

    def __init__(self, pixels, fingerprint="counting|v1", fail_at=None):
        self.pixels, self.fingerprint, self.fail_at, self.reads = pixels, fingerprint, fail_at, 0
        self.classes = ["x", "y"]

    def __len__(self):
        return len(self.pixels)

    def __getitem__(self, i):
        if i == self.fail_at:
            raise RuntimeError("source broke")
        self.reads += 1
        return self.pixels[i].float() / 127.5 - 1, i % 2


@pytest.fixture
def pixels():
    return torch.randint(0, 256, (10, 3, 32, 32), dtype=torch.uint8)


def _state(directory):
    return {f: (os.stat(directory / f).st_mtime_ns, os.stat(directory / f).st_ino)
            for f in sorted(os.listdir(directory))}


def test_built_once_then_reused(tmp_path, pixels):
    source = CountingImages(pixels)
    cache = build_multires(source, 32, tmp_path, batch_size=4)
    assert cache.built and source.reads == 10
    files = _state(cache.directory)
    assert sorted(files) == ["labels.npy", MANIFEST, "r0004.npy", "r0008.npy", "r0016.npy", "r0032.npy"]

    again = build_multires(source, 32, tmp_path)
    assert not again.built
    assert source.reads == 10  # the source was not read again
    assert again.directory == cache.directory and _state(again.directory) == files  # nor rewritten
    assert MultiResCache(cache.directory).count == 10


def test_shapes_values_and_uint8_storage(tmp_path, pixels):
    cache = build_multires(CountingImages(pixels), 32, tmp_path)
    assert cache.resolutions == [4, 8, 16, 32] == resolutions_up_to(32)
    assert (cache.channels, cache.classes, len(cache)) == (3, ["x", "y"], 10)
    for r in cache.resolutions:
        stored = np.load(cache.path(r), mmap_mode="r")
        assert stored.dtype == np.uint8 and stored.shape == (10, 3, r, r)
        view = cache.at(r)
        assert view.images.dtype == torch.uint8 and len(view) == 10
        x, label = view[3]
        assert x.shape == (3, r, r) and x.dtype == torch.float32 and label == 1
        assert -1 <= x.min() and x.max() <= 1
        # the official dataset_tool.py pyramid: the mean of each (32/r)^2 block, rounded half to even
        k = 32 // r
        blocks = pixels.double().reshape(10, 3, r, k, r, k).mean(dim=(3, 5)).numpy()
        assert torch.equal(view.images, torch.from_numpy(np.rint(blocks).astype(np.uint8)))
        if r < 32:      # not the bilinear resize the cache used to store
            assert not torch.equal(view.images, TF.resize(pixels, [r, r], antialias=True))
    with pytest.raises(ValueError, match="not cached"):
        cache.at(64)


def test_views_pickle_as_a_path(tmp_path, pixels):
    view = build_multires(CountingImages(pixels), 32, tmp_path).at(32)
    blob = pickle.dumps(view)
    assert len(blob) < pixels.numel() // 4  # the pixels are not in the pickle
    copy = pickle.loads(blob)
    assert torch.equal(copy.images, view.images) and copy[5][1] == view[5][1]


def test_incomplete_cache_is_rebuilt(tmp_path, pixels):
    source = CountingImages(pixels)
    cache = build_multires(source, 16, tmp_path)
    (cache.directory / MANIFEST).unlink()  # as if the build had been killed before the end
    assert build_multires(source, 16, tmp_path).built
    np.save(cache.directory / "r0008.npy", np.zeros((3, 3, 8, 8), np.uint8))  # wrong shape on disk
    assert build_multires(source, 16, tmp_path).built
    assert build_multires(source, 16, tmp_path, rebuild=True).built


def test_failed_build_leaves_nothing_usable(tmp_path, pixels):
    with pytest.raises(RuntimeError, match="source broke"):
        build_multires(CountingImages(pixels, fail_at=7), 16, tmp_path, batch_size=2)
    (directory,) = tmp_path.iterdir()
    assert os.listdir(directory) == []  # no manifest, no temporary files
    cache = build_multires(CountingImages(pixels), 16, tmp_path)
    assert cache.built and cache.directory == directory
    assert not [f for f in os.listdir(directory) if ".tmp-" in f]


def test_keys_separate_sources_and_resolutions(tmp_path, pixels):
    a = build_multires(CountingImages(pixels, "one"), 16, tmp_path)
    b = build_multires(CountingImages(pixels, "two"), 16, tmp_path)
    c = build_multires(CountingImages(pixels, "one"), 32, tmp_path)
    d = build_multires(CountingImages(pixels, "one"), 16, tmp_path, key="explicit")
    assert len({a.directory, b.directory, c.directory, d.directory}) == 4


def test_list_of_images_is_keyed_by_content(tmp_path):
    pil = Image.fromarray(np.full((20, 30, 3), 200, np.uint8))  # not square: resized and cropped
    gray = torch.full((1, 8, 8), 0.5)
    for batch_size in (2, 1):  # mixed within a batch, then across batches
        with pytest.raises(ValueError, match="channels"):
            build_multires([pil, gray], 8, tmp_path, batch_size=batch_size)
    images = [pil, torch.zeros(3, 8, 8, dtype=torch.uint8), torch.ones(3, 16, 16)]
    cache = build_multires(images, 8, tmp_path)
    assert cache.built and cache.at(8).images[:, 0, 0, 0].tolist() == [200, 0, 255]
    assert not build_multires(list(images), 8, tmp_path).built  # same content, same cache
    images[1] = torch.full((3, 8, 8), 9, dtype=torch.uint8)
    assert build_multires(images, 8, tmp_path).built


def test_bad_resolutions(tmp_path, pixels):
    for bad in (0, 3, 48, 2.0):
        with pytest.raises(ValueError, match="power of two"):
            build_multires(CountingImages(pixels), bad, tmp_path)
    assert resolutions_up_to(8, 8) == [8]


def test_bundled_and_folder_sources_through_get_dataset(tmp_path):
    cache = get_dataset("mnist", 32, multires=True, cache_dir=tmp_path / "cache")
    assert cache.built and cache.at(4).images.shape == (5000, 1, 4, 4)
    assert torch.equal(cache.at(32).images, get_dataset("mnist", 32).images)
    assert not get_dataset("mnist", 32, multires=True, cache_dir=tmp_path / "cache").built

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((24, 24, 3), 40 * i, np.uint8)).save(folder / f"{i}.png")
    (folder / "broken.png").write_bytes(b"broken")
    with pytest.warns(UserWarning, match="broken.png"):
        cache = get_dataset(folder, 16, multires=True, cache_dir=tmp_path / "cache")
    assert cache.built and cache.at(8).images.shape == (3, 3, 8, 8)
    assert isinstance(cache.at(16), TensorImageDataset)
    with pytest.warns(UserWarning, match="broken.png"):
        assert not get_dataset(folder, 16, multires=True, cache_dir=tmp_path / "cache").built
