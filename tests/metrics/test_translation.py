import math

import pytest
import torch

from pygan.data import UnpairedDomains, get_dataset
from pygan.metrics.translation import evaluate_translation, translation_scores


@pytest.fixture(scope="module")
def skin_tones():
    return get_dataset("emoji-skin-tones", 32)


def test_scores_by_hand():
    target = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 1.6 - 0.8
    # a constant error of 0.1 on a range of 2: PSNR = 10 log10(2^2 / 0.1^2) = 26.0206 dB
    s = translation_scores(target + 0.1, target)
    assert s["psnr"] == pytest.approx(10 * math.log10(4 / 0.01), rel=1e-5) and s["n"] == 3
    same = translation_scores(target, target)
    assert same["ssim"] == pytest.approx(1.0, abs=1e-6) and same["psnr"] > 100


def test_perfect_translator_beats_identity_beats_noise(skin_tones):
    d = skin_tones
    truth = {d.a[i][0].numpy().tobytes(): d.b[j][0] for i, j in d.pairs}
    perfect = lambda x: torch.stack([truth[img.numpy().tobytes()] for img in x])  # noqa: E731
    g = torch.Generator().manual_seed(0)
    noise = lambda x: torch.rand(x.shape, generator=g) * 2 - 1                     # noqa: E731
    p = evaluate_translation(perfect, d)
    i = evaluate_translation(lambda x: x, d)
    n = evaluate_translation(noise, d)
    assert p["n"] == len(d.pairs) and p["ssim"] == pytest.approx(1.0, abs=1e-6)
    assert p["psnr"] > i["psnr"] > n["psnr"]
    assert p["ssim"] > i["ssim"] > n["ssim"]
    # the other direction pairs B with A: identity scores the same both ways
    back = evaluate_translation(lambda x: x, d, direction="BtoA", batch_size=50)
    assert back["psnr"] == pytest.approx(i["psnr"], rel=1e-5)


def test_bad_input(skin_tones):
    with pytest.raises(ValueError, match="direction must be 'AtoB' or 'BtoA'"):
        evaluate_translation(lambda x: x, skin_tones, direction="up")
    with pytest.raises(ValueError, match="no ground-truth pairs"):
        evaluate_translation(lambda x: x, UnpairedDomains(skin_tones.a, skin_tones.b, None))
    with pytest.raises(ValueError, match="translated and target must have the same shape"):
        translation_scores(torch.zeros(2, 3, 32, 32), torch.zeros(2, 3, 16, 16))
