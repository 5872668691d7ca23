"""Evaluation metrics for generators, all offline (DESIGN.md §6).

* :func:`swd` — ProGAN's sliced Wasserstein distance over a Laplacian pyramid (Karras et al. 2018);
* :func:`ms_ssim`, :func:`msssim_diversity` — MS-SSIM adapted to 16–128 px images, and the mean
  MS-SSIM over pairs of samples as a diversity measure (Odena et al. 2017);
* :func:`fid`, :func:`kid` (torchmetrics) and :func:`prdc` (precision/recall, Kynkäänniemi et al.
  2019; density/coverage, Naeem et al. 2020) on features of :class:`BundledFeatures` (a small
  classifier trained on pygan's bundled data, shipped with pygan) or :class:`InceptionFeatures`
  (InceptionV3 from a local weights file);
* :func:`translation_scores`, :func:`evaluate_translation` — PSNR/SSIM of translations against
  ground-truth pairs (CycleGAN on ``emoji-skin-tones``);
* :func:`evaluate` — any of them for a generator against a data set (training hooks, the
  ``python -m pygan.eval`` CLI).
"""

from .evaluate import LOWER_IS_BETTER, METRICS, evaluate, evaluate_images, parse_metrics, sample_fake, sample_real
from .feature_net import FeatureNet, load_feature_net
from .features import INCEPTION_HELP, BundledFeatures, InceptionFeatures, extract, get_feature_extractor
from .fid import fid, fid_from_features, kid, kid_from_features
from .msssim import ms_ssim, msssim_diversity, small_image_settings
from .prdc import prdc
from .swd import SWDResult, laplacian_pyramid, sliced_wasserstein, swd
from .translation import evaluate_translation, translation_scores

__all__ = [
    "INCEPTION_HELP", "LOWER_IS_BETTER", "METRICS", "BundledFeatures", "FeatureNet", "InceptionFeatures",
    "SWDResult", "evaluate", "evaluate_images", "evaluate_translation", "extract", "fid",
    "fid_from_features", "get_feature_extractor", "kid", "kid_from_features", "laplacian_pyramid",
    "load_feature_net", "ms_ssim", "msssim_diversity", "parse_metrics", "prdc", "sample_fake",
    "sample_real", "sliced_wasserstein", "small_image_settings", "swd", "translation_scores",
]
