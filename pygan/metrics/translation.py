r"""Translation accuracy of an unpaired translator (CycleGAN) where ground truth exists: the
``emoji-skin-tones`` domains pair each light-skin emoji with its dark-skin version
(``UnpairedDomains.pairs``), never shown to training. Each translated image is compared with its
true counterpart:

* PSNR (dB): :math:`10\log_{10}(\mathrm{range}^2 / \mathrm{MSE})`, range 2 for [-1, 1] images,
  averaged over images (per-image PSNR, then the mean);
* SSIM (Wang et al., *Image Quality Assessment: From Error Visibility to Structural Similarity*,
  IEEE TIP 2004): 11×11 Gaussian window, σ = 1.5, averaged over images.

Both by torchmetrics. As in Zhu et al. (CycleGAN, ICCV 2017, §5) for paired test sets, the
numbers say how close the translations come to the true images; ``identity`` — translating each
image to itself — is the baseline a useful translator must beat.
"""

from __future__ import annotations

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from ._checks import as_float_images, positive_int


def translation_scores(translated, target) -> dict[str, float]:
    """Mean per-image PSNR (dB) and SSIM of ``translated[i]`` against ``target[i]``."""
    x = as_float_images(translated, "translated")
    y = as_float_images(target, "target")
    if x.shape != y.shape:
        raise ValueError(f"translated and target must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    y = y.to(x.device)
    psnr = peak_signal_noise_ratio(x, y, data_range=2.0, reduction="none", dim=(1, 2, 3))
    ssim = structural_similarity_index_measure(x, y, data_range=2.0, reduction="none")
    return {"psnr": float(psnr.mean()), "ssim": float(ssim.mean()), "n": int(x.shape[0])}


def evaluate_translation(translate, domains, *, direction: str = "AtoB",
                         batch_size: int = 64) -> dict[str, float]:
    """Translate every paired image of ``domains`` (an :class:`~pygan.data.UnpairedDomains`
    with ``pairs``) with ``translate`` (a callable: float batch in [-1, 1] -> same shape, e.g.
    a CycleGAN generator) and score it against its pair. ``direction``: ``"AtoB"`` (sources from
    ``domains.a``, targets from ``domains.b``) or ``"BtoA"``."""
    if direction not in ("AtoB", "BtoA"):
        raise ValueError(f"direction must be 'AtoB' or 'BtoA', got {direction!r}")
    pairs = getattr(domains, "pairs", None)
    if not pairs:
        raise ValueError("domains has no ground-truth pairs (UnpairedDomains.pairs is empty or None); "
                         "translation accuracy needs paired data such as 'emoji-skin-tones'")
    batch_size = positive_int(batch_size, "batch_size")
    src_set, dst_set = (domains.a, domains.b) if direction == "AtoB" else (domains.b, domains.a)
    src_idx = [p[0] if direction == "AtoB" else p[1] for p in pairs]
    dst_idx = [p[1] if direction == "AtoB" else p[0] for p in pairs]
    translated, targets = [], []
    with torch.no_grad():
        for s in range(0, len(pairs), batch_size):
            src = torch.stack([src_set[i][0] for i in src_idx[s:s + batch_size]])
            translated.append(translate(src).float().cpu().clamp(-1, 1))
            targets.append(torch.stack([dst_set[i][0] for i in dst_idx[s:s + batch_size]]))
    return translation_scores(torch.cat(translated), torch.cat(targets))
