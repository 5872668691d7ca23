"""One call that scores a generator against real data with any of pygan's metrics — what
``python -m pygan.eval`` and training-time evaluation use.

Metric names (``METRICS``) and the keys each adds to the result:

* ``swd``: ``swd_<res>`` per Laplacian level and ``swd`` (their mean), ×10³ (:mod:`.swd`);
* ``msssim``: ``msssim`` (mean MS-SSIM over random pairs of fakes) and ``msssim_real`` (the same
  on the real images, the reference) (:mod:`.msssim`);
* ``fid``: ``fid``; ``kid``: ``kid`` and ``kid_std`` over 100 subsets of min(1000, n/2) (:mod:`.fid`);
* ``pr``: ``precision``, ``recall``, ``density``, ``coverage`` (:mod:`.prdc`, k = 5).

``fid``, ``kid`` and ``pr`` share one feature extraction. Lower is better for swd, fid, kid;
higher for precision, recall, density, coverage; msssim should be close to msssim_real
(above it: less diverse than the data). :data:`LOWER_IS_BETTER` says which way each key points
(for keeping the best checkpoint).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from ._checks import as_float_images, positive_int
from .features import extract, get_feature_extractor
from .fid import fid_from_features, kid_from_features
from .msssim import msssim_diversity
from .prdc import prdc
from .swd import swd

METRICS = ("swd", "msssim", "fid", "kid", "pr")
LOWER_IS_BETTER = {"swd": True, "fid": True, "kid": True, "msssim": True, "precision": False,
                   "recall": False, "density": False, "coverage": False,
                   # translation accuracy (CycleGAN against ground-truth pairs, :mod:`.translation`)
                   "psnr_AtoB": False, "ssim_AtoB": False, "psnr_BtoA": False, "ssim_BtoA": False}
_METRIC_OF_KEY = {"swd": "swd", "fid": "fid", "kid": "kid", "msssim": "msssim", "precision": "pr",
                  "recall": "pr", "density": "pr", "coverage": "pr"}


def metric_of(key: str, translation: bool = False) -> str | None:
    """The metric name (``METRICS``) whose evaluation produces result ``key``; ``"translation"``
    for the CycleGAN pair scores when ``translation``; None for an unknown key."""
    if key in _METRIC_OF_KEY:
        return _METRIC_OF_KEY[key]
    if translation and key in LOWER_IS_BETTER:
        return "translation"
    return None


def improves(key: str, value: float, best: float | None) -> bool:
    """Whether ``value`` of result ``key`` beats ``best`` (None: nothing yet)."""
    if best is None:
        return True
    return value < best if LOWER_IS_BETTER[key] else value > best


def parse_metrics(metrics: str | Iterable[str]) -> tuple[str, ...]:
    """``"swd,fid"`` or an iterable of names -> validated tuple, in the given order."""
    names = [m.strip().lower() for m in (metrics.split(",") if isinstance(metrics, str) else metrics)]
    names = [m for m in names if m]
    unknown = [m for m in names if m not in METRICS]
    if unknown or not names:
        raise ValueError(f"metrics must be a comma-separated subset of {','.join(METRICS)}, got "
                         f"{metrics!r}" + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
    return tuple(dict.fromkeys(names))


def sample_real(dataset, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` images of ``dataset`` (without replacement, chosen with ``seed``) as float in [-1, 1].
    Uses the uint8 ``.images`` tensor when the dataset has one."""
    n = positive_int(n, "n")
    if len(dataset) < n:
        raise ValueError(f"n={n} is more than the {len(dataset)} images of the real data set")
    idx = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(int(seed)))[:n]
    if isinstance(getattr(dataset, "images", None), torch.Tensor):
        return as_float_images(dataset.images[idx], "dataset.images")
    return torch.stack([dataset[int(i)][0] for i in idx])


def sample_fake(generator_fn: Callable[[int], torch.Tensor], n: int, batch_size: int = 256) -> torch.Tensor:
    """``n`` images from ``generator_fn(b)`` (b images (b, C, H, W) in [-1, 1]) called in batches."""
    n, batch_size = positive_int(n, "n"), positive_int(batch_size, "batch_size")
    out = []
    with torch.no_grad():
        while sum(len(x) for x in out) < n:
            b = min(batch_size, n - sum(len(x) for x in out))
            x = generator_fn(b)
            if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[0] != b:
                raise ValueError(f"generator_fn({b}) must return a tensor (b={b}, C, H, W), got "
                                 f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
            out.append(x.detach().float().cpu().clamp(-1, 1))
    return torch.cat(out)


def evaluate_images(real: torch.Tensor, fake: torch.Tensor, metrics: str | Iterable[str] = METRICS, *,
                    extractor: nn.Module | None = None, seed: int = 0, batch_size: int = 256,
                    device: str | torch.device = "cpu", swd_options: dict | None = None,
                    msssim_pairs: int = 1000, kid_subsets: int = 100) -> dict[str, float]:
    """The metrics between image sets ``real`` and ``fake`` (same shape for swd). ``extractor``:
    the feature module for fid/kid/pr (default: the bundled one). ``swd_options``: keyword
    arguments of :func:`~pygan.metrics.swd.swd` (``patches``, ``directions``, ``repeats``)."""
    names = parse_metrics(metrics)
    real = as_float_images(real, "real")
    fake = as_float_images(fake, "fake")
    if real.shape[1:] != fake.shape[1:]:
        raise ValueError(f"real and fake images must have the same (C, H, W), got {tuple(real.shape[1:])} "
                         f"and {tuple(fake.shape[1:])}")
    out: dict[str, float] = {}
    if "swd" in names:
        out.update(swd(real, fake, seed=seed, batch_size=batch_size, device=device,
                       **(swd_options or {})).as_dict())
    if "msssim" in names:
        out["msssim"] = msssim_diversity(fake, pairs=msssim_pairs, seed=seed, batch_size=batch_size)
        out["msssim_real"] = msssim_diversity(real, pairs=msssim_pairs, seed=seed, batch_size=batch_size)
    if {"fid", "kid", "pr"} & set(names):
        extractor = extractor if extractor is not None else get_feature_extractor("bundled", device=device)
        fr = extract(extractor, real.to(device), batch_size)
        ff = extract(extractor, fake.to(device), batch_size)
        if "fid" in names:
            out["fid"] = fid_from_features(fr, ff)
        if "kid" in names:
            # subsets of 1000 (Bińkowski et al.), at most half the smaller set so that the
            # subsets differ and kid_std means something
            size = min(1000, max(2, min(len(fr), len(ff)) // 2))
            out["kid"], out["kid_std"] = kid_from_features(fr, ff, subsets=kid_subsets, subset_size=size,
                                                           seed=seed)
        if "pr" in names:
            out.update(prdc(fr, ff, k=5))
    return out


def evaluate(generator_fn: Callable[[int], torch.Tensor], real_dataset, metrics: str | Iterable[str] = METRICS,
             *, n: int = 1000, seed: int = 0, extractor: nn.Module | None = None, batch_size: int = 256,
             device: str | torch.device = "cpu", **options) -> dict[str, float]:
    """Score a generator: ``n`` fakes from ``generator_fn(b)`` (returns b images in [-1, 1] at the
    real data's size; seed it yourself for repeatable numbers) against ``n`` images of
    ``real_dataset`` drawn with ``seed``. Returns ``{key: value}`` (see the module docstring).
    ``options``: passed to :func:`evaluate_images` (``swd_options``, ``msssim_pairs``,
    ``kid_subsets``).

    For training-time evaluation::

        g = torch.Generator(device).manual_seed(0)
        scores = evaluate(lambda b: G(torch.randn(b, latent, generator=g, device=device)),
                          dataset, "swd,fid", n=1000)
    """
    real = sample_real(real_dataset, n, seed)
    fake = sample_fake(generator_fn, n, batch_size)
    return evaluate_images(real, fake, metrics, extractor=extractor, seed=seed, batch_size=batch_size,
                           device=device, **options)
