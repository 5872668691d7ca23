"""CycleGAN's history pool of generated images (Zhu et al. 2017, §4: 50 images)."""

import pytest
import torch

from pygan.models.cyclegan import ImagePool


def batch(start, n=2):
    """Images whose every pixel holds a unique id, so returned images can be traced."""
    return torch.arange(start, start + n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, 2, 2)


def ids(images):
    return [int(v) for v in images[:, 0, 0, 0]]


def test_fills_then_returns_the_new_images_unchanged():
    pool = ImagePool(pool_size=4)
    assert len(pool) == 0
    for start in (0, 2):
        out = pool.query(batch(start))
        assert ids(out) == [start, start + 1] and out.shape == (2, 3, 2, 2)
    assert len(pool) == 4


def test_after_filling_half_the_images_come_from_the_history():
    pool = ImagePool(pool_size=50, generator=torch.Generator().manual_seed(0))
    pool.query(batch(0, 50))
    from_history, total = 0, 0
    for step in range(40):
        start = 1000 + 10 * step
        before = sorted(int(img[0, 0, 0]) for img in pool.images)
        out = ids(pool.query(batch(start, 10)))
        after = sorted(int(img[0, 0, 0]) for img in pool.images)
        assert len(pool) == 50
        # nothing is lost or duplicated: what went in is what is stored plus what came out
        assert sorted(before + list(range(start, start + 10))) == sorted(after + out)
        from_history += sum(image_id != start + k for k, image_id in enumerate(out))
        total += len(out)
    assert 0.4 < from_history / total < 0.6       # 400 fair coin flips: 5 sigma is +-0.125


def test_returns_detached_copies_that_later_writes_do_not_change():
    pool = ImagePool(pool_size=3)
    fake = batch(0).clone().requires_grad_()
    out = pool.query(fake * 1)
    assert not out.requires_grad
    with torch.no_grad():
        fake.add_(100)
    assert ids(torch.stack(pool.images)) == [0, 1]


def test_zero_size_pool_passes_images_through():
    images = batch(0, 3)
    assert torch.equal(ImagePool(0).query(images), images)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="pool_size"):
        ImagePool(-1)
    with pytest.raises(TypeError, match="generator"):
        ImagePool(5, generator=0)
    with pytest.raises(ValueError, match="images must be a batch"):
        ImagePool(5).query(torch.zeros(0, 3))
