"""DCGAN (Radford, Metz & Chintala 2016, "Unsupervised Representation Learning with Deep
Convolutional Generative Adversarial Networks", §3 and Figure 1).

Architecture guidelines of the paper, for 2^k x 2^k images (32x32 and 64x64 are the usual ones):
    * no pooling: strided convolutions downsample (discriminator), transposed convolutions
      upsample (generator), 4x4 kernels;
    * batch norm in both networks, except the generator's output and the discriminator's input;
    * ReLU in the generator with a tanh output; LeakyReLU(0.2) in the discriminator;
    * weights from N(0, 0.02), batch-norm scales from N(1, 0.02).

64x64 generator:  z (100) -> ConvT 4x4 to 512x4x4 -> 256x8x8 -> 128x16x16 -> 64x32x32 -> 3x64x64
64x64 discriminator: 3x64x64 -> 64x32x32 -> 128x16x16 -> 256x8x8 -> 512x4x4 -> 1 logit

The layer indices of ``main`` follow the PyTorch DCGAN example (its activations and batch norms
hold no extra parameters), so its 64x64 checkpoints load. The discriminator returns logits (no
sigmoid): train with :func:`pygan.losses.bce_discriminator_loss` (or the LSGAN losses).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .. import nn as pnn
from . import _validate


def num_stages(image_size: int) -> int:
    """Stride-2 layers between the 4x4 stage and the last layer: log2(image_size) - 3."""
    _validate.power_of_two("image_size", image_size, low=16)
    return int(math.log2(image_size)) - 3


def init_dcgan_weights(module: nn.Module) -> None:
    """Radford et al.'s initialisation: conv weights N(0, 0.02); norm scales N(1, 0.02), shifts 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def latent_batch(z: object, latent_dim: int) -> torch.Tensor:
    """Accept z as (N, latent_dim) or (N, latent_dim, 1, 1); return (N, latent_dim, 1, 1)."""
    if isinstance(z, torch.Tensor) and z.dim() == 4 and tuple(z.shape[1:]) == (latent_dim, 1, 1):
        z = z.flatten(1)
    z = _validate.batch("z", z, (latent_dim,))
    return z.view(*z.shape, 1, 1)


def image_batch(x: object, channels: int, image_size: int) -> torch.Tensor:
    return _validate.batch("x", x, (channels, image_size, image_size))


class Generator(nn.Module):
    """DCGAN generator: z (N, latent_dim) or (N, latent_dim, 1, 1) -> images
    (N, img_channels, image_size, image_size) in [-1, 1].

    Args:
        image_size: output side, a power of two >= 16 (32 and 64 in the literature).
        latent_dim: size of z ~ N(0, I) (100 in the paper).
        img_channels: output channels.
        base_channels: channels of the last hidden layer (``ngf``); they double per layer
            towards the 4x4 stage.
    """

    def __init__(self, image_size: int = 64, latent_dim: int = 100, img_channels: int = 3,
                 base_channels: int = 64) -> None:
        super().__init__()
        n = num_stages(image_size)
        self.image_size = image_size
        self.latent_dim = _validate.positive_int("latent_dim", latent_dim)
        self.img_channels = _validate.positive_int("img_channels", img_channels)
        _validate.positive_int("base_channels", base_channels)
        widths = [base_channels * 2 ** (n - i) for i in range(n + 1)]   # 4x4 stage first
        layers: list[nn.Module] = [nn.ConvTranspose2d(latent_dim, widths[0], 4, 1, 0, bias=False),
                                   nn.BatchNorm2d(widths[0]), pnn.ReLU()]
        for w_in, w_out in zip(widths, widths[1:]):
            layers += [nn.ConvTranspose2d(w_in, w_out, 4, 2, 1, bias=False), nn.BatchNorm2d(w_out),
                       pnn.ReLU()]
        layers += [nn.ConvTranspose2d(widths[-1], img_channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        init_dcgan_weights(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(latent_batch(z, self.latent_dim))


class Discriminator(nn.Module):
    """DCGAN discriminator: images (N, img_channels, image_size, image_size) -> logits (N, 1).

    Args:
        image_size: input side, a power of two >= 16.
        img_channels: input channels.
        base_channels: channels of the first layer (``ndf``); they double per layer.
    """

    def __init__(self, image_size: int = 64, img_channels: int = 3, base_channels: int = 64) -> None:
        super().__init__()
        n = num_stages(image_size)
        self.image_size = image_size
        self.img_channels = _validate.positive_int("img_channels", img_channels)
        _validate.positive_int("base_channels", base_channels)
        widths = [base_channels * 2**i for i in range(n + 1)]
        layers: list[nn.Module] = [nn.Conv2d(img_channels, widths[0], 4, 2, 1, bias=False),
                                   pnn.LeakyReLU(0.2)]
        for w_in, w_out in zip(widths, widths[1:]):
            layers += [nn.Conv2d(w_in, w_out, 4, 2, 1, bias=False), nn.BatchNorm2d(w_out),
                       pnn.LeakyReLU(0.2)]
        layers.append(nn.Conv2d(widths[-1], 1, 4, 1, 0, bias=False))
        self.main = nn.Sequential(*layers)
        init_dcgan_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = image_batch(x, self.img_channels, self.image_size)
        return self.main(x).view(x.shape[0], 1)
