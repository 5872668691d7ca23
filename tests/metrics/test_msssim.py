import pytest
import torch
import torchvision.transforms.functional as TF

from pygan.metrics.msssim import STANDARD_BETAS, ms_ssim, msssim_diversity, small_image_settings


@pytest.mark.parametrize("resolution, scales", [(16, 2), (32, 3), (64, 4), (128, 5)])
def test_small_image_settings(resolution, scales):
    s = small_image_settings(resolution)
    assert len(s["betas"]) == scales and sum(s["betas"]) == pytest.approx(1.0)
    assert s["kernel_size"] == 7 and s["sigma"] == 1.0
    # the weights keep the standard ones' proportions
    assert s["betas"][1] / s["betas"][0] == pytest.approx(STANDARD_BETAS[1] / STANDARD_BETAS[0])
    # the coarsest scale still holds the 7x7 window
    assert resolution >> (scales - 1) >= 7


def test_large_images_use_the_standard_setting():
    assert small_image_settings(256) == {"kernel_size": 11, "sigma": 1.5, "betas": STANDARD_BETAS}


@pytest.mark.parametrize("size", [32, 64])
def test_ranks_identical_above_blurred_above_noise(emoji32, size):
    x = torch.nn.functional.interpolate(emoji32[:16].float().div(127.5).sub(1), size=size, mode="bilinear")
    g = torch.Generator().manual_seed(0)
    same = ms_ssim(x, x, reduction="mean")
    blurred = ms_ssim(x, TF.gaussian_blur(x, 5, 1.0), reduction="mean")
    noisy = ms_ssim(x, (x + 0.5 * torch.randn(x.shape, generator=g)).clamp(-1, 1), reduction="mean")
    assert float(same) == pytest.approx(1.0, abs=1e-5)
    assert 1.0 > float(blurred) > float(noisy) > 0.0
    per_pair = ms_ssim(x, TF.gaussian_blur(x, 5, 1.0))
    assert per_pair.shape == (16,) and float(per_pair.mean()) == pytest.approx(float(blurred), rel=1e-5)


def test_constant_images_by_hand():
    # constant images: the structure terms are 1, MS-SSIM is the luminance term at the coarsest
    # scale, l = (2 mx my + C1) / (mx^2 + my^2 + C1), C1 = (0.01 * 2)^2, to the power beta_M
    x = torch.full((1, 3, 32, 32), 0.5)
    y = torch.full((1, 3, 32, 32), 0.25)
    c1 = (0.01 * 2.0) ** 2
    lum = (2 * 0.5 * 0.25 + c1) / (0.5 ** 2 + 0.25 ** 2 + c1)
    beta_m = STANDARD_BETAS[2] / sum(STANDARD_BETAS[:3])
    assert float(ms_ssim(x, y)[0]) == pytest.approx(lum ** beta_m, rel=1e-4)


def test_diversity_orders_collapsed_real_and_noise(sets):
    real = msssim_diversity(sets["real"], pairs=64)
    collapsed = msssim_diversity(sets["real"][:1].expand(16, -1, -1, -1), pairs=16)
    noise = msssim_diversity(torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1,
                             pairs=16)
    assert collapsed == pytest.approx(1.0, abs=1e-5)
    assert noise < real < collapsed


def test_diversity_is_deterministic_and_pairs_distinct_images(sets):
    a = msssim_diversity(sets["real"], pairs=32, seed=5)
    assert a == msssim_diversity(sets["real"], pairs=32, seed=5)
    # batching only changes the float summation order
    assert a == pytest.approx(msssim_diversity(sets["real"], pairs=32, seed=5, batch_size=7), rel=1e-6)
    assert a != msssim_diversity(sets["real"], pairs=32, seed=6)
    # two different images only: every pair is (0, 1) or (1, 0), never an image with itself
    two = sets["real"][:2]
    assert msssim_diversity(two, pairs=8) == pytest.approx(float(ms_ssim(two[:1], two[1:])[0]), rel=1e-5)


def test_bad_input():
    with pytest.raises(ValueError, match="images must hold at least 2 images"):
        msssim_diversity(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="x images must be at least 16x16"):
        ms_ssim(torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match="x and y must have the same shape"):
        ms_ssim(torch.zeros(2, 3, 32, 32), torch.zeros(3, 3, 32, 32))
    with pytest.raises(ValueError, match="resolution must be an int >= 16"):
        small_image_settings(8)
    with pytest.raises(ValueError, match="pairs must be a positive int"):
        msssim_diversity(torch.zeros(2, 3, 32, 32), pairs=0)
