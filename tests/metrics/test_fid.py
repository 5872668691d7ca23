import numpy as np
import pytest
import scipy.linalg
import torch

from pygan.metrics.features import BundledFeatures, extract
from pygan.metrics.fid import fid, fid_from_features, kid_from_features


@pytest.fixture(scope="module")
def feats(sets):
    f = BundledFeatures()
    return {k: extract(f, v) for k, v in sets.items()}


def test_fid_identical_sets_is_zero(feats):
    assert fid_from_features(feats["real"], feats["real"]) == pytest.approx(0.0, abs=1e-3)


def test_fid_and_kid_rank_real_below_blurred_below_noise(feats):
    f = {k: fid_from_features(feats["real"], feats[k]) for k in ("other", "blurred", "noisy")}
    assert 0 < f["other"] < f["blurred"] < f["noisy"], f
    k = {k: kid_from_features(feats["real"], feats[k], subsets=20, subset_size=32)[0]
         for k in ("other", "blurred", "noisy")}
    assert k["other"] < k["blurred"] < k["noisy"], k


def test_fid_by_hand():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(200, 3, generator=g, dtype=torch.float64) @ torch.tensor(
        [[1.0, 0.2, 0.0], [0.0, 0.5, 0.1], [0.0, 0.0, 2.0]], dtype=torch.float64)
    # a shift changes only the means: FID = |v|^2
    v = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    assert fid_from_features(a, a + v) == pytest.approx(float(v @ v), rel=1e-6)
    # general case against the closed form with scipy's matrix square root
    b = torch.randn(150, 3, generator=g, dtype=torch.float64) * torch.tensor([0.5, 1.5, 1.0], dtype=torch.float64) + 0.3
    mu1, mu2 = a.mean(0).numpy(), b.mean(0).numpy()
    s1, s2 = np.cov(a.numpy(), rowvar=False), np.cov(b.numpy(), rowvar=False)
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert fid_from_features(a, b) == pytest.approx(expected, rel=1e-6)


def test_kid_by_hand():
    # one subset holding every row: KID is the unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3
    g = torch.Generator().manual_seed(0)
    x = torch.randn(10, 4, generator=g, dtype=torch.float64)
    y = torch.randn(10, 4, generator=g, dtype=torch.float64) + 0.5
    k = lambda p, q: (p @ q.T / 4 + 1) ** 3  # noqa: E731
    m = 10
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    expected = ((kxx.sum() - kxx.trace()) / (m * (m - 1)) + (kyy.sum() - kyy.trace()) / (m * (m - 1))
                - 2 * kxy.mean())
    mean, std = kid_from_features(x, y, subsets=1, subset_size=10)
    assert mean == pytest.approx(float(expected), rel=1e-6) and std == 0.0


def test_kid_is_deterministic_for_a_seed(feats):
    a = kid_from_features(feats["real"], feats["other"], subsets=10, subset_size=16, seed=1)
    assert a == kid_from_features(feats["real"], feats["other"], subsets=10, subset_size=16, seed=1)
    assert a != kid_from_features(feats["real"], feats["other"], subsets=10, subset_size=16, seed=2)


def test_fid_on_images_uses_the_extractor(sets, feats):
    assert fid(sets["real"], sets["other"], BundledFeatures()) == pytest.approx(
        fid_from_features(feats["real"], feats["other"]), rel=1e-6)


def test_bad_features():
    with pytest.raises(ValueError, match="real features must be a float tensor"):
        fid_from_features(torch.zeros(4), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="fake features must hold at least 2 rows"):
        fid_from_features(torch.zeros(4, 2), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="same width"):
        kid_from_features(torch.zeros(4, 2), torch.zeros(4, 3))
