"""The fully connected GAN for 28x28 digits (Goodfellow et al. 2014, "Generative Adversarial
Nets"), in the widely used multilayer-perceptron form:

    Generator      z (100) -> 256 -> 512 -> 1024 -> 784 -> tanh -> (1, 28, 28)
    Discriminator  (1, 28, 28) -> 784 -> 1024 -> 512 -> 256 -> 1 logit

Hidden layers are linear + leaky ReLU (slope 0.2, :class:`pygan.nn.LeakyReLU`), the
discriminator optionally with dropout as in the paper's maxout discriminator. Train it with the
non-saturating loss (:mod:`pygan.losses`) on images scaled to [-1, 1].
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .. import nn as pnn
from . import _validate


def _shape(img_shape: object) -> tuple[int, ...]:
    if not isinstance(img_shape, (tuple, list)) or not img_shape:
        raise TypeError(f"img_shape must be a non-empty tuple of ints such as (1, 28, 28); "
                        f"got {img_shape!r}")
    return tuple(_validate.positive_int(f"img_shape[{i}]", d) for i, d in enumerate(img_shape))


def _widths(name: str, widths: object) -> tuple[int, ...]:
    if not isinstance(widths, (tuple, list)) or not widths:
        raise TypeError(f"{name} must be a non-empty tuple of ints, got {widths!r}")
    return tuple(_validate.positive_int(f"{name}[{i}]", w) for i, w in enumerate(widths))


class Generator(nn.Module):
    """MLP generator: ``z`` (N, latent_dim) -> images (N, *img_shape) in [-1, 1].

    Args:
        latent_dim: size of the noise vector z ~ N(0, I).
        img_shape: (channels, height, width) of the output images.
        hidden: widths of the hidden layers.
    """

    def __init__(self, latent_dim: int = 100, img_shape: tuple[int, ...] = (1, 28, 28),
                 hidden: tuple[int, ...] = (256, 512, 1024)) -> None:
        super().__init__()
        self.latent_dim = _validate.positive_int("latent_dim", latent_dim)
        self.img_shape = _shape(img_shape)
        widths = (latent_dim, *_widths("hidden", hidden))
        layers: list[nn.Module] = []
        for w_in, w_out in zip(widths, widths[1:]):
            layers += [nn.Linear(w_in, w_out), pnn.LeakyReLU(0.2)]
        layers += [nn.Linear(widths[-1], math.prod(self.img_shape)), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = _validate.batch("z", z, (self.latent_dim,))
        return self.net(z).view(z.shape[0], *self.img_shape)


class Discriminator(nn.Module):
    """MLP discriminator: images (N, *img_shape) -> logits (N, 1).

    Args:
        img_shape: (channels, height, width) of the input images.
        hidden: widths of the hidden layers.
        dropout: dropout probability after each hidden activation (0 disables it).
    """

    def __init__(self, img_shape: tuple[int, ...] = (1, 28, 28),
                 hidden: tuple[int, ...] = (1024, 512, 256), dropout: float = 0.0) -> None:
        super().__init__()
        self.img_shape = _shape(img_shape)
        dropout = _validate.real("dropout", dropout, low=0.0, high=1.0)
        widths = (math.prod(self.img_shape), *_widths("hidden", hidden))
        layers: list[nn.Module] = []
        for w_in, w_out in zip(widths, widths[1:]):
            layers += [nn.Linear(w_in, w_out), pnn.LeakyReLU(0.2)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(widths[-1], 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _validate.batch("x", x, self.img_shape)
        return self.net(x.flatten(1))
