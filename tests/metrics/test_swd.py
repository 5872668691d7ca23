import math

import pytest
import torch

from pygan.metrics.swd import SWDResult, laplacian_pyramid, pyramid_down, pyramid_up, sliced_wasserstein, swd

SMALL = {"patches": 32, "directions": 64, "repeats": 1}


def test_identical_sets_give_exactly_zero(sets):
    r = swd(sets["real"], sets["real"], **SMALL)
    assert r.levels == {32: 0.0, 16: 0.0} and r.mean == 0.0


def test_ranks_real_below_blurred_below_noise(sets):
    d = {k: swd(sets["real"], sets[k], **SMALL).mean for k in ("other", "blurred", "noisy")}
    assert 0 < d["other"] < d["blurred"] < d["noisy"], d


def test_blur_shows_in_the_finest_level(sets):
    # blur removes detail from the 32x32 band and barely touches the 16x16 low-pass level:
    # against the same images unblurred, the finest level's distance grows by more
    other = swd(sets["real"], sets["other"], **SMALL).levels
    blurred = swd(sets["real"], sets["blurred"], **SMALL).levels
    assert blurred[32] - other[32] > 5 * abs(blurred[16] - other[16]), (other, blurred)


def test_deterministic_for_a_seed_and_varies_with_it(sets):
    a = swd(sets["real"], sets["other"], seed=3, **SMALL)
    b = swd(sets["real"], sets["other"], seed=3, **SMALL)
    c = swd(sets["real"], sets["other"], seed=4, **SMALL)
    assert a == b
    assert a.mean != c.mean
    assert abs(a.mean - c.mean) < 0.5 * a.mean      # a different draw, the same quantity


def test_batch_size_and_uint8_do_not_change_the_result(sets):
    a = swd(sets["real"], sets["other"], batch_size=256, **SMALL)
    b = swd(sets["real"], sets["other"], batch_size=7, **SMALL)
    u8 = lambda x: x.add(1).mul(127.5).round().to(torch.uint8)  # noqa: E731 - exact round trip
    c = swd(u8(sets["real"]), u8(sets["other"]), **SMALL)
    assert a.levels.keys() == b.levels.keys() == c.levels.keys()
    for k in a.levels:
        assert math.isclose(a.levels[k], b.levels[k], rel_tol=1e-5)
        assert math.isclose(a.levels[k], c.levels[k], rel_tol=1e-4)


def test_levels_per_resolution():
    x = torch.rand(4, 1, 64, 64) * 2 - 1
    r = swd(x, x.flip(0), patches=8, directions=8, repeats=1)
    assert isinstance(r, SWDResult) and list(r.levels) == [64, 32, 16]
    assert r.mean == pytest.approx(sum(r.levels.values()) / 3)
    assert set(r.as_dict()) == {"swd_64", "swd_32", "swd_16", "swd"}
    y = torch.rand(4, 3, 28, 28) * 2 - 1
    assert list(swd(y, y.flip(0), patches=8, directions=8, repeats=1).levels) == [28]


def test_sliced_wasserstein_by_hand():
    # 1-D: sorted {0,1,2} vs {1,2,3}: every pair differs by 1
    a = torch.tensor([[2.0], [0.0], [1.0]])
    b = torch.tensor([[3.0], [1.0], [2.0]])
    assert float(sliced_wasserstein(a, b, torch.ones(1, 1))) == pytest.approx(1.0)
    # a shift by v: the projection on unit u moves every point by u.v, so W1 = |u.v|
    g = torch.Generator().manual_seed(0)
    a = torch.randn(50, 2, generator=g, dtype=torch.float64)
    v = torch.tensor([3.0, -1.0], dtype=torch.float64)
    u = torch.tensor([[1.0, 0.0, 0.6], [0.0, 1.0, 0.8]], dtype=torch.float64)
    expected = (3.0 + 1.0 + abs(0.6 * 3 - 0.8)) / 3
    assert float(sliced_wasserstein(a, a + v, u)) == pytest.approx(expected)
    assert float(sliced_wasserstein(a, a + v, u, chunk=1)) == pytest.approx(expected)


def test_laplacian_pyramid_reconstructs_and_constant_has_no_detail():
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    bands = laplacian_pyramid(x, 2)
    assert [b.shape[-1] for b in bands] == [32, 16]
    assert torch.allclose(bands[0] + pyramid_up(bands[1]), x)
    const = torch.full((1, 1, 32, 32), 0.25, dtype=torch.float64)
    band, low = laplacian_pyramid(const, 2)
    assert torch.allclose(band, torch.zeros_like(band)) and torch.allclose(low, torch.full_like(low, 0.25))
    assert torch.allclose(pyramid_down(const), torch.full((1, 1, 16, 16), 0.25, dtype=torch.float64))


@pytest.mark.parametrize("real, fake, match", [
    (torch.zeros(2, 3, 32, 32), torch.zeros(3, 3, 32, 32), "same shape"),
    (torch.zeros(2, 3, 32, 16), torch.zeros(2, 3, 32, 16), "square"),
    (torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 8, 8), "real images must be at least 16x16"),
    (torch.zeros(3, 32, 32), torch.zeros(3, 32, 32), r"real must be a batch of images shaped \(N, C, H, W\)"),
    (torch.zeros(2, 3, 32, 32, dtype=torch.int32), torch.zeros(2, 3, 32, 32), "real must be float"),
])
def test_bad_input_names_the_argument(real, fake, match):
    with pytest.raises((ValueError, TypeError), match=match):
        swd(real, fake)


def test_bad_options():
    x = torch.zeros(2, 3, 16, 16)
    with pytest.raises(ValueError, match="directions must be a positive int"):
        swd(x, x, directions=0)
    with pytest.raises(TypeError, match="fake must be a torch.Tensor"):
        swd(x, x.numpy())
