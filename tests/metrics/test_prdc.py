import pytest
import torch

from pygan.metrics.features import BundledFeatures, extract
from pygan.metrics.prdc import prdc


def test_by_hand_in_one_dimension():
    real = torch.arange(10, dtype=torch.float64)[:, None]        # 0..9: every 1-NN radius is 1
    fake = torch.tensor([[0.5], [20.0]], dtype=torch.float64)    # 1-NN radius of each: 19.5
    r = prdc(real, fake, k=1)
    assert r["precision"] == 0.5        # 0.5 lies in the balls of 0 and 1; 20 in none
    assert r["density"] == 1.0          # (2 balls + 0 balls) / (k * M) = 2 / 2
    assert r["coverage"] == 0.2         # only the balls of 0 and 1 hold a fake
    assert r["recall"] == 1.0           # every real lies within 19.5 of 0.5


def test_identical_sets_are_fully_precise_and_covered(sets):
    f = extract(BundledFeatures(), sets["real"])
    r = prdc(f, f, k=5)
    assert r["precision"] == r["recall"] == r["coverage"] == 1.0
    assert r["density"] >= 1.0


def test_recall_and_coverage_rank_real_above_blurred_above_noise(sets):
    """Recall and coverage (the diversity halves) rank another real set above a heavily blurred
    one above a noisy one. Measured with the bundled features at n = 64 (other / heavy blur /
    noise): recall 0.94 / 0.86 / 0.70, coverage 0.91 / 0.83 / 0.80. The fixture's mild blur
    (5x5, sigma 1) is not separated from real images by any of the four numbers at this n (FID,
    KID and SWD do separate it), and noisy emoji collapse onto a dense part of the real manifold,
    so precision and density stay high for them: neither ranks noise, by construction."""
    ex = BundledFeatures()
    real = extract(ex, sets["real"])
    r = {k: prdc(real, extract(ex, sets[k]), k=5) for k in ("other", "heavy_blur", "noisy")}
    for key in ("recall", "coverage"):
        assert r["other"][key] > r["heavy_blur"][key] > r["noisy"][key], (key, r)
    assert r["other"]["recall"] > r["noisy"]["recall"] + 0.15
    assert r["other"]["precision"] > 0.9 and r["other"]["recall"] > 0.9


def test_chunking_does_not_change_the_result():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(40, 8, generator=g), torch.randn(30, 8, generator=g) + 0.3
    assert prdc(a, b, k=3) == prdc(a, b, k=3, chunk=7)


def test_bad_input():
    with pytest.raises(ValueError, match="k=5 needs more than k rows"):
        prdc(torch.zeros(5, 2), torch.zeros(10, 2))
    with pytest.raises(ValueError, match="same feature width"):
        prdc(torch.zeros(10, 2), torch.zeros(10, 3))
    with pytest.raises(ValueError, match="k must be a positive int"):
        prdc(torch.zeros(10, 2), torch.zeros(10, 2), k=0)
