"""Feature extractors for FID, KID and precision/recall: modules mapping images (N, C, H, W), float
in [-1, 1] or uint8, 1 or 3 channels, any size, to features (N, F). Each has ``num_features``,
which is what torchmetrics' FID/KID read from a custom ``feature`` module.

* :class:`BundledFeatures` — pygan's small classifier (:mod:`pygan.metrics.feature_net`), 256-d,
  images resized to 32×32. Works offline, always.
* :class:`InceptionFeatures` — InceptionV3's 2048-d pool features (Szegedy et al., 2016), the
  network of FID (Heusel et al., 2017), from a weights file the user gives: pygan never downloads
  anything (DESIGN.md §6). Images are resized to 299×299 and fed in [-1, 1], the input range of
  Google's InceptionV3 weights.

:func:`get_feature_extractor` picks one by name; :func:`extract` runs one over a tensor in batches.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import as_float_images, positive_int
from .feature_net import INPUT_SIZE, NUM_FEATURES, load_feature_net

INCEPTION_SIZE = 299
INCEPTION_FEATURES = 2048

INCEPTION_HELP = (
    "InceptionV3 weights are not bundled and pygan never downloads them. On a machine with network "
    "access, get the FID Inception weights (pytorch-fid's pt_inception-2015-12-05-6726825d.pth, "
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
    "pt_inception-2015-12-05-6726825d.pth) or torchvision's ImageNet InceptionV3 "
    "(inception_v3_google-0cc3c7bd.pth, the file torchvision.models.inception_v3(weights=\"DEFAULT\") "
    "downloads into its cache), copy the file here and pass its path with "
    "--inception-weights PATH (Python: InceptionFeatures(PATH))."
)


def to_rgb(images, name: str, size: int) -> torch.Tensor:
    """``images`` as float (N, 3, size, size) in [-1, 1]: grey repeated to three channels,
    resized with antialiased bilinear interpolation when the size differs."""
    x = as_float_images(images, name)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x


class BundledFeatures(nn.Module):
    """256-d embeddings from pygan's bundled :class:`~pygan.metrics.feature_net.FeatureNet`."""

    num_features = NUM_FEATURES

    def __init__(self, weights: str | os.PathLike | None = None):
        super().__init__()
        self.net = load_feature_net(weights)
        self.train(False)

    def train(self, mode: bool = True) -> "BundledFeatures":  # always in eval mode
        return super().train(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = to_rgb(images, "images", INPUT_SIZE).to(next(self.net.parameters()).device)
        return self.net.features(x)


class InceptionFeatures(nn.Module):
    """2048-d InceptionV3 pool features from a local weights file.

    ``weights``: a state_dict for torchvision's ``inception_v3`` (with or without the auxiliary
    classifier; 1000 or 1008 classes — the FID port has 1008). Raises FileNotFoundError with
    instructions (:data:`INCEPTION_HELP`) when the file is missing, ValueError when it is not an
    InceptionV3 state_dict.

    Note: the reference FID code runs four pooling layers slightly differently from torchvision
    (average pools that exclude padding, one max pool) and resizes like TensorFlow 1; features here
    use torchvision's layers, so values are close to, not identical with, published FIDs.
    """

    num_features = INCEPTION_FEATURES

    def __init__(self, weights: str | os.PathLike | None):
        super().__init__()
        from torchvision.models import inception_v3

        if weights is None or not os.path.isfile(os.fspath(weights)):
            where = "no path was given" if weights is None else f"no file at {os.fspath(weights)}"
            raise FileNotFoundError(f"InceptionV3 weights: {where}. {INCEPTION_HELP}")
        path = os.fspath(weights)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - re-raised with the path
            raise ValueError(f"could not load InceptionV3 weights from {path}: {e}") from e
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        if not isinstance(state, dict) or "fc.weight" not in state:
            raise ValueError(f"{path} is not an InceptionV3 state_dict (no 'fc.weight' entry)")
        aux = any(k.startswith("AuxLogits.") for k in state)
        net = inception_v3(weights=None, aux_logits=aux, init_weights=False, transform_input=False,
                           num_classes=state["fc.weight"].shape[0])
        try:
            net.load_state_dict(state)
        except RuntimeError as e:
            raise ValueError(f"{path} does not match torchvision's inception_v3: {e}") from e
        net.fc = nn.Identity()
        self.net = net.eval().requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> "InceptionFeatures":
        return super().train(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = to_rgb(images, "images", INCEPTION_SIZE).to(next(self.net.parameters()).device)
        return self.net(x)


def get_feature_extractor(name: str = "bundled", inception_weights: str | os.PathLike | None = None,
                          device: str | torch.device = "cpu") -> nn.Module:
    """``"bundled"`` (default) or ``"inception"`` (needs ``inception_weights``), on ``device``."""
    if name == "bundled":
        return BundledFeatures().to(device)
    if name == "inception":
        return InceptionFeatures(inception_weights).to(device)
    raise ValueError(f"feature extractor must be 'bundled' or 'inception', got {name!r}")


def extract(extractor: nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Features (N, F) of ``images`` in batches, without gradients, on the CPU as float32."""
    batch_size = positive_int(batch_size, "batch_size")
    out = []
    with torch.no_grad():
        for s in range(0, images.shape[0], batch_size):
            out.append(extractor(images[s:s + batch_size]).float().cpu())
    return torch.cat(out)
