"""CycleGAN's networks (Zhu, Park, Isola & Efros 2017, "Unpaired Image-to-Image Translation using
Cycle-Consistent Adversarial Networks", §4 and Appendix 7.2).

ResNet generator (Johnson et al.'s architecture), ``c7s1-64, d128, d256, R256 x 9, u128, u64,
c7s1-3``: reflection padding, 7x7 convolutions at both ends, two stride-2 convolutions down, 6
(128x128 images) or 9 (256x256) residual blocks, two stride-2 transposed convolutions up,
instance norm and ReLU after every convolution but the last, tanh output.

70x70 PatchGAN discriminator, ``C64-C128-C256-C512`` then a 1-channel convolution: 4x4
convolutions, instance norm (not on C64), LeakyReLU(0.2); it scores every overlapping 70x70 patch
(30x30 scores for a 256x256 image). Train it with the LSGAN losses.

The history pool (§4, after Shrivastava et al. 2017) feeds the discriminators a mix of the newest
fakes and up to 50 earlier ones.

Parameter names and counts follow the authors' PyTorch code (``model.<i>`` indices, biased
convolutions, instance norm without affine parameters, N(0, 0.02) weights): 11.378 M for the
9-block generator with 64 base filters, 2.765 M for the 3-layer PatchGAN.
"""

from __future__ import annotations

import torch
from torch import nn

from .. import nn as pnn
from . import _validate


def init_cyclegan_weights(module: nn.Module) -> None:
    """The authors' "normal" initialisation: conv weights N(0, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


# --- normalisation: the one place where CycleGAN's norm layers are built -------------------

def _norm(channels: int, activation: str | None = None) -> pnn.InstanceNormAct:
    """Instance norm without affine parameters or running statistics (the authors' ``norm='instance'``),
    with the activation that follows it fused in (pygan's ``instance_norm_act`` op)."""
    return pnn.InstanceNormAct(channels, affine=False, activation=activation)


def _norm_act(channels: int, activation: str) -> list[nn.Module]:
    """Norm + activation in one layer, then an ``nn.Identity`` where the activation layer was, so
    the ``model.<i>`` indices (the state_dict keys) stay those of the authors' code."""
    return [_norm(channels, activation), nn.Identity()]


# --- sizes -----------------------------------------------------------------------------------

#: Residual blocks by resolution (§4 / Appendix 7.2): 6 for 128x128 training images, 9 for 256x256
#: "or higher"; the authors' code names them resnet_6blocks and resnet_9blocks.
def paper_num_blocks(resolution: int) -> int:
    """9 residual blocks from 256x256 up, 6 below (the paper's rule)."""
    return 9 if resolution >= 256 else 6


def patch_sizes(size: int, num_layers: int = 3) -> list[int]:
    """Side of every feature map of :class:`PatchDiscriminator` for a ``size``-sided input, in
    order: the first stride-2 convolution, the ``num_layers`` normalised layers, the score map.
    A k=4, p=1 convolution maps n to floor((n + 2 - 4) / stride) + 1."""
    sizes, n = [], size
    for stride in [2] * num_layers + [1, 1]:
        n = (n - 2) // stride + 1 if n >= 2 else 0
        sizes.append(n)
    return sizes


def min_resolution(num_layers: int = 3) -> int:
    """The smallest square input (a multiple of 4, as the generator needs) that both networks
    accept: every instance-normalised map of the PatchGAN keeps more than one pixel (instance
    norm of a single value is undefined) and the score map at least one. 24 for the 70x70
    PatchGAN (24 -> 12 -> 6 -> 3 -> 2 -> 1); the generator alone needs 8 (its 2x2 bottleneck)."""
    _validate.positive_int("num_layers", num_layers)
    size = 8
    while True:
        sizes = patch_sizes(size, num_layers)
        if all(n >= 2 for n in sizes[1:-1]) and sizes[-1] >= 1:
            return size
        size += 4


def _image_batch(name: str, x: object, channels: int, multiple: int = 1) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if x.dim() != 4 or x.shape[1] != channels or x.shape[0] == 0:
        raise ValueError(f"{name} must have shape (N, {channels}, H, W) with N >= 1; got {tuple(x.shape)}")
    if x.shape[2] % multiple or x.shape[3] % multiple:
        raise ValueError(f"{name}'s height and width must be multiples of {multiple}; got {tuple(x.shape)}")
    return x


class ResnetBlock(nn.Module):
    """``x + (pad, conv3x3, norm, ReLU, [dropout], pad, conv3x3, norm)(x)`` with reflection padding."""

    def __init__(self, channels: int, dropout: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3),
                                   *_norm_act(channels, "relu")]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), _norm(channels)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        *body, norm = self.conv_block          # the last norm adds the skip connection in its pass
        h = x
        for layer in body:
            h = layer(h)
        return norm(h, residual=x)


class ResnetGenerator(nn.Module):
    """CycleGAN's ResNet generator: (N, in_channels, H, W) -> (N, out_channels, H, W) in [-1, 1];
    H and W multiples of 4.

    Args:
        in_channels, out_channels: image channels (``input_nc``, ``output_nc``).
        base_channels: filters of the first layer (``ngf``, 64).
        num_blocks: residual blocks (``n_blocks``): 9 for 256x256 images, 6 for 128x128.
        dropout: dropout(0.5) inside the residual blocks (off in CycleGAN).
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, base_channels: int = 64,
                 num_blocks: int = 9, dropout: bool = False) -> None:
        super().__init__()
        self.in_channels = _validate.positive_int("in_channels", in_channels)
        _validate.positive_int("out_channels", out_channels)
        ngf = _validate.positive_int("base_channels", base_channels)
        _validate.non_negative_int("num_blocks", num_blocks)
        if not isinstance(dropout, bool):
            raise TypeError(f"dropout must be a bool, got {type(dropout).__name__}")
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7),
                                   *_norm_act(ngf, "relu")]
        for mult in (1, 2):                                   # d128, d256
            layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1),
                       *_norm_act(ngf * mult * 2, "relu")]
        layers += [ResnetBlock(ngf * 4, dropout) for _ in range(num_blocks)]
        for mult in (4, 2):                                   # u128, u64
            layers += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1,
                                          output_padding=1),
                       *_norm_act(ngf * mult // 2, "relu")]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        init_cyclegan_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(_image_batch("x", x, self.in_channels, multiple=4))


class PatchDiscriminator(nn.Module):
    """PatchGAN discriminator: (N, in_channels, H, W) -> patch scores (N, 1, H', W') (30x30 for
    256x256 inputs with 3 layers: each score sees a 70x70 patch).

    Args:
        in_channels: image channels (``input_nc``).
        base_channels: filters of the first layer (``ndf``, 64); they double per layer up to 8x.
        num_layers: stride-2 layers after the first (``n_layers``); 3 gives the 70x70 PatchGAN.
    """

    def __init__(self, in_channels: int = 3, base_channels: int = 64, num_layers: int = 3) -> None:
        super().__init__()
        self.in_channels = _validate.positive_int("in_channels", in_channels)
        ndf = _validate.positive_int("base_channels", base_channels)
        _validate.positive_int("num_layers", num_layers)
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1),
                                   pnn.LeakyReLU(0.2)]
        width = ndf
        for n in range(1, num_layers + 1):
            stride = 2 if n < num_layers else 1               # the last C-layer keeps the size
            out = ndf * min(2**n, 8)
            layers += [nn.Conv2d(width, out, 4, stride=stride, padding=1),
                       *_norm_act(out, "lrelu")]
            width = out
        layers.append(nn.Conv2d(width, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)
        init_cyclegan_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(_image_batch("x", x, self.in_channels))


class ImagePool:
    """History of generated images (Shrivastava et al. 2017; CycleGAN §4, 50 images).

    ``query(images)`` returns a batch of the same shape, detached. Until the pool is full every
    image is stored and returned as is. After that each image is, with probability 1/2, swapped
    for a random stored one (the stored one is returned, the new one takes its place), otherwise
    returned as is. ``pool_size=0`` returns the input unchanged. Random draws use ``generator``
    when one is given (a CPU ``torch.Generator``), else torch's global generator.
    """

    def __init__(self, pool_size: int = 50, generator: torch.Generator | None = None) -> None:
        self.pool_size = _validate.non_negative_int("pool_size", pool_size)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        self.generator = generator
        self.images: list[torch.Tensor] = []

    def __len__(self) -> int:
        return len(self.images)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if not isinstance(images, torch.Tensor) or images.dim() < 1 or images.shape[0] == 0:
            got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"images must be a batch tensor (N, ...) with N >= 1; got {got}")
        images = images.detach()
        if self.pool_size == 0:
            return images
        out = []
        for image in images:
            if len(self.images) < self.pool_size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand((), generator=self.generator) < 0.5:
                index = int(torch.randint(self.pool_size, (), generator=self.generator))
                out.append(self.images[index])
                self.images[index] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    __call__ = query
