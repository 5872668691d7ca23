"""ProGAN (Karras, Aila, Laine & Lehtinen 2018, "Progressive Growing of GANs for Improved Quality,
Stability, and Variation", §2-4 and Appendix A, Table 2).

Both networks grow from 4x4 to ``resolution`` one doubling at a time. They are called as
``G(z, alpha, steps)`` and ``D(x, alpha, steps)`` with ``steps = log2(current_resolution / 4)``
(0 at 4x4) and ``alpha`` in [0, 1] fading the newest block in (1 once it is stable).

Feature maps at ``steps`` s: ``nf(s + 1)`` with ``nf(k) = clamp(fmap_base // 2^k, 1, fmap_max)``
(512 up to 32x32, then 256, 128, 64, 32, 16 at 1024x1024 with the paper's 8192 / 512).

Generator (Table 2, left):
    pixel norm of z -> dense to nf(1) x 4 x 4 (the paper's 4x4 "full" convolution of the 1x1
    latent) -> bias, LReLU, pixel norm -> conv 3x3, LReLU, pixel norm
    per doubling: 2x nearest-neighbour upsample -> 2 x (conv 3x3, LReLU, pixel norm)
    toRGB: conv 1x1, linear output (no tanh)
Discriminator (Table 2, right):
    fromRGB: conv 1x1, LReLU
    per halving: 2 x (conv 3x3, LReLU) -> 2x2 average pool
    at 4x4: minibatch stddev -> conv 3x3, LReLU -> dense nf(0), LReLU -> dense 1, linear
    (stddev over groups of ``mbstd_group_size`` = 4 samples as in the official TensorFlow code,
    or over the whole minibatch with None as the paper describes; ``mbstd_averaging`` picks one
    of the Theano code's variants, see :class:`pygan.nn.MinibatchStd`)

LSGAN noise (the paper's LSGAN appendix; ``GDropLayer(mode='prop')`` of the Theano code): with
``D.noise_strength`` = s > 0 and D in training mode, the input of every 3x3 convolution and of
the first dense layer (not fromRGB, not the output layer, as in the Theano D) is multiplied by
1 + s * sqrt(C) * e, one e ~ N(0, 1) per sample and channel (C the input's channels), the same
over pixels. s is set by the training loop from D's running output; 0 (the default) is a no-op.

Every layer, dense ones included, has an equalized learning rate (§4.1: N(0, 1) weights scaled
by sqrt(2 / fan_in) at run time; toRGB and the last dense layer use gain 1, and the first dense
layer sqrt(2) / 4, as in the authors' code); leaky ReLUs have slope 0.2; the generator's
convolutions end in the fused bias + LReLU + pixel-norm op. While a block fades in, the new
block's output is blended with the previous resolution's (upsampled toRGB in G, downsampled
input through the previous fromRGB in D) by :class:`pygan.nn.FadeIn`, linearly: a tanh in the
blend is a known cause of collapse. At the paper's configuration (1024, 512, 3, 8192, 512) the
layers the 1024x1024 network uses hold 23.07 M (G) and 23.08 M (D) parameters, the paper's 23.1 M.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .. import nn as pnn
from . import _validate

__all__ = ["Generator", "Discriminator", "feature_maps"]


def feature_maps(stage: int, fmap_base: int, fmap_max: int) -> int:
    """``nf(stage)`` of the paper's code: fmap_base / 2^stage, clamped to [1, fmap_max]."""
    return max(1, min(fmap_base // 2**stage, fmap_max))


class _Progressive(nn.Module):
    """What both networks share: the configuration, feature-map widths and input checks."""

    def _configure(self, resolution: int, latent_dim: int, img_channels: int, fmap_base: int,
                   fmap_max: int) -> list[int]:
        self.resolution = _validate.power_of_two("resolution", resolution, low=4)
        self.latent_dim = _validate.positive_int("latent_dim", latent_dim)
        self.img_channels = _validate.positive_int("img_channels", img_channels)
        self.fmap_base = _validate.positive_int("fmap_base", fmap_base)
        self.fmap_max = _validate.positive_int("fmap_max", fmap_max)
        self.max_steps = int(math.log2(resolution)) - 2
        return [self.channels(s) for s in range(self.max_steps + 1)]

    def channels(self, steps: int) -> int:
        """Feature maps of the blocks working at resolution 4 * 2^steps."""
        return feature_maps(steps + 1, self.fmap_base, self.fmap_max)

    def _check_steps_alpha(self, steps: object, alpha: object) -> int:
        if isinstance(steps, bool) or not isinstance(steps, int):
            raise TypeError(f"steps must be an int (log2(resolution / 4)), got {type(steps).__name__}")
        if not 0 <= steps <= self.max_steps:
            raise ValueError(f"steps must be in [0, {self.max_steps}] for resolution "
                             f"{self.resolution}; got {steps}")
        if isinstance(alpha, torch.Tensor):
            if alpha.dim() != 0:
                raise ValueError(f"alpha must be a float or a 0-dim tensor; got shape {tuple(alpha.shape)}")
        elif isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
            raise TypeError(f"alpha must be a float in [0, 1] or a 0-dim tensor, got {type(alpha).__name__}")
        elif not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        return steps


class _GeneratorInput(nn.Module):
    """z -> pixel norm -> dense to C x 4 x 4 -> bias, LReLU, pixel norm -> conv 3x3, LReLU, pixel norm."""

    def __init__(self, latent_dim: int, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.normalize_latent = pnn.PixelNorm()
        # gain (sqrt(2) / 4)^2 = 2 / 16: the authors' dense layer matches the original 4x4 "full"
        # convolution, whose fan-in counted all 16 taps.
        self.dense = pnn.EqualizedLinear(latent_dim, channels * 16, bias=False, gain=2 / 16)
        self.dense_activation = pnn.BiasLeakyReLU(channels, negative_slope=0.2, pixel_norm=True)
        self.conv = pnn.EqualizedConv2d(channels, channels, 3, activation="lrelu", pixel_norm=True)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.dense(self.normalize_latent(z)).view(z.shape[0], self.channels, 4, 4)
        return self.conv(self.dense_activation(x))


class _GeneratorBlock(nn.Module):
    """2x nearest-neighbour upsample -> 2 x (conv 3x3, fused bias + LReLU + pixel norm)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.conv0 = pnn.EqualizedConv2d(in_channels, out_channels, 3, activation="lrelu", pixel_norm=True)
        self.conv1 = pnn.EqualizedConv2d(out_channels, out_channels, 3, activation="lrelu", pixel_norm=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1(self.conv0(self.upsample(x)))


class Generator(_Progressive):
    """ProGAN generator: ``G(z, alpha, steps)`` -> images (N, img_channels, 4 * 2^steps, same),
    linear output (images in [-1, 1] are the training target; nothing clamps them).

    Args:
        resolution: final resolution, a power of two >= 4.
        latent_dim: size of z (N, latent_dim) or (N, latent_dim, 1, 1), z ~ N(0, I).
        img_channels: image channels.
        fmap_base, fmap_max: feature maps nf(k) = clamp(fmap_base // 2^k, 1, fmap_max).

    ``to_rgb[s]`` turns the features at ``steps`` s into an image; ``blocks[s - 1]`` grows the
    features from ``steps`` s - 1 to s.
    """

    def __init__(self, resolution: int = 1024, latent_dim: int = 512, img_channels: int = 3,
                 fmap_base: int = 8192, fmap_max: int = 512) -> None:
        super().__init__()
        widths = self._configure(resolution, latent_dim, img_channels, fmap_base, fmap_max)
        self.input = _GeneratorInput(latent_dim, widths[0])
        self.blocks = nn.ModuleList(_GeneratorBlock(widths[s - 1], widths[s])
                                    for s in range(1, self.max_steps + 1))
        self.to_rgb = nn.ModuleList(pnn.EqualizedConv2d(w, img_channels, 1, gain=1.0) for w in widths)
        self.fade_in = pnn.FadeIn()

    def forward(self, z: torch.Tensor, alpha: float | torch.Tensor, steps: int) -> torch.Tensor:
        steps = self._check_steps_alpha(steps, alpha)
        if isinstance(z, torch.Tensor) and z.dim() == 4 and tuple(z.shape[1:]) == (self.latent_dim, 1, 1):
            z = z.flatten(1)
        z = _validate.batch("z", z, (self.latent_dim,))
        x = self.input(z)
        if steps == 0:
            return self.to_rgb[0](x)
        for block in self.blocks[: steps - 1]:
            x = block(x)
        previous = self.to_rgb[steps - 1](x)                  # upsampled inside the fade-in op
        current = self.to_rgb[steps](self.blocks[steps - 1](x))
        return self.fade_in(previous, current, alpha)


def multiplicative_noise(x: torch.Tensor, strength: float) -> torch.Tensor:
    """x * (1 + strength * sqrt(C) * e), e ~ N(0, 1) per sample and channel (x is (N, C, H, W));
    x itself when strength is 0. The Theano code's ``GDropLayer(mode='prop', axes=(0, 1))``."""
    if not strength:
        return x
    e = torch.randn(x.shape[0], x.shape[1], 1, 1, device=x.device, dtype=x.dtype)
    return x * (1.0 + e * (strength * math.sqrt(x.shape[1])))


class _DiscriminatorBlock(nn.Module):
    """2 x (conv 3x3, fused bias + LReLU), the second changing the width -> 2x2 average pool."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv0 = pnn.EqualizedConv2d(in_channels, in_channels, 3, activation="lrelu")
        self.conv1 = pnn.EqualizedConv2d(in_channels, out_channels, 3, activation="lrelu")
        self.downsample = nn.AvgPool2d(2)

    def forward(self, x: torch.Tensor, noise: float = 0.0) -> torch.Tensor:
        x = self.conv0(multiplicative_noise(x, noise))
        return self.downsample(self.conv1(multiplicative_noise(x, noise)))


class _DiscriminatorOutput(nn.Module):
    """At 4x4: minibatch stddev -> conv 3x3, LReLU -> dense, LReLU -> dense to 1 score (linear)."""

    def __init__(self, channels: int, dense_channels: int, group_size: int | None = 4,
                 averaging: str = "all") -> None:
        super().__init__()
        self.minibatch_std = pnn.MinibatchStd(group_size=group_size, num_channels=1, averaging=averaging)
        stats = self.minibatch_std.extra_channels(channels)
        self.conv = pnn.EqualizedConv2d(channels + stats, channels, 3, activation="lrelu")
        self.dense0 = pnn.EqualizedLinear(channels * 16, dense_channels, activation="lrelu")
        self.dense1 = pnn.EqualizedLinear(dense_channels, 1, gain=1.0)

    def forward(self, x: torch.Tensor, noise: float = 0.0) -> torch.Tensor:
        x = self.conv(multiplicative_noise(self.minibatch_std(x), noise))
        return self.dense1(self.dense0(multiplicative_noise(x, noise).flatten(1)))


class Discriminator(_Progressive):
    """ProGAN discriminator (critic): ``D(x, alpha, steps)`` with x (N, img_channels, 4 * 2^steps,
    same) -> scores (N, 1), linear. N must be divisible by min(mbstd_group_size, N).

    Arguments as :class:`Generator` (``latent_dim`` is accepted for symmetry and unused), plus
    ``mbstd_group_size`` (4, or None for the whole minibatch) and ``mbstd_averaging`` (see
    :class:`pygan.nn.MinibatchStd`). ``noise_strength``: the LSGAN noise (module docstring).
    ``from_rgb[s]`` reads images at ``steps`` s; ``blocks[s - 1]`` shrinks features from ``steps``
    s to s - 1.
    """

    def __init__(self, resolution: int = 1024, latent_dim: int = 512, img_channels: int = 3,
                 fmap_base: int = 8192, fmap_max: int = 512, mbstd_group_size: int | None = 4,
                 mbstd_averaging: str = "all") -> None:
        super().__init__()
        widths = self._configure(resolution, latent_dim, img_channels, fmap_base, fmap_max)
        self.noise_strength = 0.0
        self.from_rgb = nn.ModuleList(pnn.EqualizedConv2d(img_channels, w, 1, activation="lrelu")
                                      for w in widths)
        self.blocks = nn.ModuleList(_DiscriminatorBlock(widths[s], widths[s - 1])
                                    for s in range(1, self.max_steps + 1))
        self.downsample = nn.AvgPool2d(2)
        self.fade_in = pnn.FadeIn()
        self.output = _DiscriminatorOutput(widths[0], feature_maps(0, fmap_base, fmap_max),
                                           mbstd_group_size, mbstd_averaging)

    def forward(self, x: torch.Tensor, alpha: float | torch.Tensor, steps: int) -> torch.Tensor:
        steps = self._check_steps_alpha(steps, alpha)
        size = 4 * 2**steps
        x = _validate.batch("x", x, (self.img_channels, size, size))
        noise = float(self.noise_strength) if self.training else 0.0
        h = self.from_rgb[steps](x)
        if steps > 0:
            current = self.blocks[steps - 1](h, noise)
            previous = self.from_rgb[steps - 1](self.downsample(x))
            h = self.fade_in(previous, current, alpha)
            for block in reversed(self.blocks[: steps - 1]):
                h = block(h, noise)
        return self.output(h, noise)
