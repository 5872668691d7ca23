"""The small feature network bundled with pygan, so that FID, KID and precision/recall run offline
out of the box (InceptionV3's FID weights cannot ship with pygan: see :mod:`pygan.metrics.features`).

``FeatureNet`` is a 6-convolution VGG-style classifier on 32×32 RGB images in [-1, 1]
(grey images are repeated to three channels). It was trained by ``scripts/train_feature_net.py`` on
pygan's bundled data to tell apart :data:`CLASSES`: the 10 MNIST digits, the 7 source photos of
the ``photos`` crops, and 8 groups of emoji by Unicode block. Its penultimate layer (256 numbers, before
the ReLU), standardised per dimension over the training images (``features``), is the embedding
the distribution metrics compare, the role
Inception's 2048-d pool features play in Heusel et al. (2017).

Numbers computed with these features are comparable with each other, not with published FIDs.
"""

from __future__ import annotations

import json
import os

import torch
from torch import nn

WEIGHTS_FILE = os.path.join(os.path.dirname(__file__), "feature_net.pt")
INFO_FILE = os.path.join(os.path.dirname(__file__), "feature_net.json")
INPUT_SIZE = 32
NUM_FEATURES = 256

#: Emoji groups: the first three hex digits of the emoji's first code point (its 256-code-point
#: Unicode block); everything else is "emoji/other".
EMOJI_BLOCKS = ("1f1", "1f3", "1f4", "1f5", "1f6", "1f9", "1fa")
CLASSES = (tuple(f"mnist/{d}" for d in range(10))
           + ("photos/astronaut", "photos/chelsea", "photos/coffee", "photos/immunohistochemistry",
              "photos/rocket", "photos/china", "photos/flower")
           + tuple(f"emoji/{b}" for b in EMOJI_BLOCKS) + ("emoji/other",))


def emoji_class(name: str) -> int:
    """The class index of an emoji from its Twemoji file name (``1f600``, ``1f44b-1f3fb`` …)."""
    block = name.split("-")[0][:3] if len(name.split("-")[0]) == 5 else ""
    label = f"emoji/{block}" if block in EMOJI_BLOCKS else "emoji/other"
    return CLASSES.index(label)


def _block(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1), nn.ReLU(inplace=True), nn.AvgPool2d(2)]


class FeatureNet(nn.Module):
    """32×32×3 -> conv blocks of 16, 32, 64 channels (each two 3×3 convs + ReLU, then 2×2 average
    pooling) -> 4×4×64 -> linear 256 (``features``) -> ReLU -> linear ``len(CLASSES)``.

    ``forward`` returns the class logits, :meth:`features` the 256-d embedding.
    """

    num_features = NUM_FEATURES

    def __init__(self, num_classes: int = len(CLASSES)):
        super().__init__()
        self.body = nn.Sequential(*_block(3, 16), *_block(16, 32), *_block(32, 64), nn.Flatten())
        self.embed = nn.Linear(64 * 4 * 4, NUM_FEATURES)
        self.head = nn.Linear(NUM_FEATURES, num_classes)
        # Fixed standardisation of the embedding, measured on the training images after training
        # (scripts/train_feature_net.py): features have mean 0 and variance 1 per dimension on the
        # bundled data, a scale at which KID's polynomial kernel (x.y/d + 1)^3 is well behaved.
        self.register_buffer("feature_mean", torch.zeros(NUM_FEATURES))
        self.register_buffer("feature_std", torch.ones(NUM_FEATURES))

    def embedding(self, x: torch.Tensor) -> torch.Tensor:
        """The raw 256-d embedding (the classifier's input)."""
        return self.embed(self.body(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The standardised embedding: ``(embedding - feature_mean) / feature_std``."""
        return (self.embedding(x) - self.feature_mean) / self.feature_std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.embedding(x)))


def load_feature_net(path: str | os.PathLike | None = None) -> FeatureNet:
    """The trained :class:`FeatureNet` in eval mode, from ``path`` (default: the bundled
    ``feature_net.pt``), loaded with ``torch.load(weights_only=True)``."""
    path = os.fspath(path) if path is not None else WEIGHTS_FILE
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"feature network weights not found at {path}; the bundled file ships inside the pygan "
            "package (package_data pygan/metrics/feature_net.pt) and is rebuilt with "
            "`python scripts/train_feature_net.py`")
    net = FeatureNet()
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return net.eval().requires_grad_(False)


def feature_net_info() -> dict:
    """What ``scripts/train_feature_net.py`` recorded: held-out accuracy, training time, sizes."""
    with open(INFO_FILE) as f:
        return json.load(f)
