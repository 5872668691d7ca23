"""WGAN and WGAN-GP critics (Arjovsky et al. 2017, "Wasserstein GAN"; Gulrajani et al. 2017,
"Improved Training of Wasserstein GANs") on the DCGAN architecture.

The generator is DCGAN's (:class:`pygan.models.dcgan.Generator`, re-exported here). The critic
has DCGAN's shape (4x4 stride-2 convolutions, channels doubling, LeakyReLU(0.2)) but no batch
norm: batch norm makes each sample's score depend on the rest of the batch, which breaks the
per-sample gradient penalty. Gulrajani et al. (§4) recommend layer normalisation as a
drop-in replacement; ``norm="layer"`` normalises each sample over (C, H, W) with per-channel
scale and shift (``GroupNorm`` with one group, as in their code), ``norm="none"`` uses a biased
convolution whose bias and LeakyReLU run as one fused op (:class:`pygan.nn.BiasLeakyReLU`).

64x64 critic: 3x64x64 -> 64x32x32 -> 128x16x16 -> 256x8x8 -> 512x4x4 -> 1 score (linear).
Train with :func:`pygan.losses.wgan_critic_loss` plus either :func:`pygan.losses.clip_weights_`
(WGAN, often with ``norm="none"``) or 10 x :func:`pygan.losses.gradient_penalty` (WGAN-GP).
"""

from __future__ import annotations

import torch
from torch import nn

from .. import nn as pnn
from . import _validate
from .dcgan import Generator, image_batch, init_dcgan_weights, num_stages

__all__ = ["Critic", "Generator"]

NORMS = ("layer", "none")


def _critic_layer(w_in: int, w_out: int, norm: str, first: bool) -> list[nn.Module]:
    conv = nn.Conv2d(w_in, w_out, 4, 2, 1, bias=False)
    if norm == "layer" and not first:
        return [conv, nn.GroupNorm(1, w_out), pnn.LeakyReLU(0.2)]
    return [conv, pnn.BiasLeakyReLU(w_out, negative_slope=0.2)]


class Critic(nn.Module):
    """DCGAN-shaped critic without batch norm: images (N, C, S, S) -> scores (N, 1).

    Args:
        image_size: input side, a power of two >= 16.
        img_channels: input channels.
        base_channels: channels of the first layer; they double per layer.
        norm: "layer" (layer norm after every convolution but the first, as DCGAN leaves the
            input layer unnormalised) or "none".
    """

    def __init__(self, image_size: int = 64, img_channels: int = 3, base_channels: int = 64,
                 norm: str = "layer") -> None:
        super().__init__()
        n = num_stages(image_size)
        self.image_size = image_size
        self.img_channels = _validate.positive_int("img_channels", img_channels)
        _validate.positive_int("base_channels", base_channels)
        self.norm = _validate.choice("norm", norm, NORMS)
        widths = [img_channels] + [base_channels * 2**i for i in range(n + 1)]
        layers: list[nn.Module] = []
        for i, (w_in, w_out) in enumerate(zip(widths, widths[1:])):
            layers += _critic_layer(w_in, w_out, norm, first=i == 0)
        layers.append(nn.Conv2d(widths[-1], 1, 4, 1, 0))
        self.main = nn.Sequential(*layers)
        init_dcgan_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = image_batch(x, self.img_channels, self.image_size)
        return self.main(x).view(x.shape[0], 1)
