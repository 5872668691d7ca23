"""Shared image sets for the metric tests: two disjoint sets of real emoji at 32×32, and the second
set blurred and with added noise (the degradations every metric must rank: real < blurred < noise).
Every metric test runs on one CPU thread and stays small (64 images per set)."""

import pytest
import torch
import torchvision.transforms.functional as TF

N = 64


@pytest.fixture(autouse=True)
def _one_thread():
    # per test, not per session: a session-scoped fixture here kept one thread for everything
    # collected after tests/metrics (the op tests included) until the session ended
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def emoji32():
    from pygan.data import get_dataset

    return get_dataset("emoji", 32).images          # uint8 (4009, 3, 32, 32)


@pytest.fixture(scope="session")
def sets(emoji32):
    """dict of float sets in [-1, 1]: real, other (disjoint reals), blurred, noisy (both of other),
    and heavy_blur (other under a 9x9, sigma 2 Gaussian: detail visibly gone at 32x32)."""
    gen = torch.Generator().manual_seed(1)
    perm = torch.randperm(len(emoji32), generator=gen)
    real = emoji32[perm[:N]].float().div(127.5).sub(1)
    other = emoji32[perm[N:2 * N]].float().div(127.5).sub(1)
    blurred = TF.gaussian_blur(other, kernel_size=5, sigma=1.0)
    noisy = (other + 0.5 * torch.randn(other.shape, generator=gen)).clamp(-1, 1)
    heavy_blur = TF.gaussian_blur(other, kernel_size=9, sigma=2.0)
    return {"real": real, "other": other, "blurred": blurred, "noisy": noisy, "heavy_blur": heavy_blur}
