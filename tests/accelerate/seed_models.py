"""The models of the tutorials pygan's users start from (``shared/seeds``), written out from the
seeds' text as users have them: plain torch, no pygan. ``pygan.accelerate`` must make these
faster without changing their maths, so they are kept exactly in the seeds' forms (including
their quirks: the unbiased whole-batch stddev without eps, the tanh inside the generator's
fade-in, the re-used LeakyReLU and PixelNorm modules of ConvBlock).

Seed 000: ProGAN (tutorial and the public code it follows: two WSConv2d forms, two initial
blocks). Seed 001: CycleGAN ResNet generator and PatchGAN discriminator. Seed 002: the WGAN-GP
MLP generator and critic. Seed 004: the MLP GAN generator and discriminator.
"""

from __future__ import annotations

from math import log2

import torch
import torch.nn as nn
import torch.nn.functional as F

# ---- seed 000: ProGAN --------------------------------------------------------------------------

FACTORS = [1, 1, 1, 1, 1 / 2, 1 / 4, 1 / 4, 1 / 8, 1 / 16]


class PixelNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.epsilon = 1e-8

    def forward(self, x):
        return x / torch.sqrt(torch.mean(x ** 2, dim=1, keepdim=True) + self.epsilon)


class WSConv2d(nn.Module):
    """The tutorial's form: the scale on the input, the bias inside the convolution."""

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding=1, gain=2):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding)
        self.scale = (gain / (self.conv.weight[0].numel())) ** 0.5
        nn.init.normal_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x):
        return self.conv(x * self.scale)


class WSConv2dBiasBeside(nn.Module):
    """The public code's form: the bias moved out of the convolution and added after it."""

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding=1, gain=2):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding)
        self.scale = (gain / (in_channels * (kernel_size ** 2))) ** 0.5
        self.bias = self.conv.bias
        self.conv.bias = None
        nn.init.normal_(self.conv.weight)
        nn.init.zeros_(self.bias)

    def forward(self, x):
        return self.conv(x * self.scale) + self.bias.view(1, self.bias.shape[0], 1, 1)


class ConvBlock(nn.Module):
    def __init__(self, in_channels, out_channels, use_pixelnorm=True, ws=WSConv2d):
        super().__init__()
        self.use_pn = use_pixelnorm
        self.conv1 = ws(in_channels, out_channels)
        self.conv2 = ws(out_channels, out_channels)
        self.leaky = nn.LeakyReLU(0.2)
        self.pn = PixelNorm()

    def forward(self, x):
        x = self.leaky(self.conv1(x))
        x = self.pn(x) if self.use_pn else x
        x = self.leaky(self.conv2(x))
        x = self.pn(x) if self.use_pn else x
        return x


class ProGenerator(nn.Module):
    """``form="tutorial"``: initial = ConvTranspose2d, LeakyReLU, PixelNorm and WSConv2d with the
    bias inside (seed 000 as printed). ``form="public"``: the public code's initial block
    (PixelNorm, ConvTranspose2d, LeakyReLU, WSConv2d 3x3, LeakyReLU, PixelNorm) and WSConv2d with
    the bias beside."""

    def __init__(self, z_dim, in_channels, img_size, img_channels=3, form="tutorial"):
        super().__init__()
        ws = WSConv2d if form == "tutorial" else WSConv2dBiasBeside
        self.prog_blocks, self.rgb_layers = nn.ModuleList([]), nn.ModuleList([])
        if form == "tutorial":
            self.initial = nn.Sequential(
                nn.ConvTranspose2d(z_dim, in_channels, 4, 1, 0), nn.LeakyReLU(0.2), PixelNorm())
        else:
            self.initial = nn.Sequential(
                PixelNorm(), nn.ConvTranspose2d(z_dim, in_channels, 4, 1, 0), nn.LeakyReLU(0.2),
                ws(in_channels, in_channels, kernel_size=3, stride=1, padding=1),
                nn.LeakyReLU(0.2), PixelNorm())
        channels = in_channels
        for idx in range(int(log2(img_size / 4)) + 1):
            conv_in = channels
            conv_out = int(in_channels * FACTORS[idx])
            self.prog_blocks.append(ConvBlock(conv_in, conv_out, ws=ws))
            self.rgb_layers.append(ws(conv_out, img_channels, kernel_size=1, stride=1, padding=0))
            channels = conv_out

    def fade_in(self, alpha, upscaled, generated):
        return torch.tanh(alpha * generated + (1 - alpha) * upscaled)

    def forward(self, x, alpha, steps):
        upscaled = self.initial(x)
        out = self.prog_blocks[0](upscaled)
        if steps == 0:
            return self.rgb_layers[0](out)
        for step in range(1, steps + 1):
            upscaled = F.interpolate(out, scale_factor=2, mode="nearest")
            out = self.prog_blocks[step](upscaled)
        final_upscaled = self.rgb_layers[steps - 1](upscaled)
        final_out = self.rgb_layers[steps](out)
        return self.fade_in(alpha, final_upscaled, final_out)


class ProDiscriminator(nn.Module):
    def __init__(self, img_size, z_dim, in_channels, img_channels=3, form="tutorial"):
        super().__init__()
        ws = WSConv2d if form == "tutorial" else WSConv2dBiasBeside
        self.prog_blocks, self.rgb_layers = nn.ModuleList([]), nn.ModuleList([])
        channels = in_channels
        for idx in range(int(log2(img_size / 4)) + 1):
            conv_in = int(in_channels * FACTORS[idx])
            conv_out = channels
            self.rgb_layers.append(ws(img_channels, conv_in, kernel_size=1, stride=1, padding=0))
            self.prog_blocks.append(ConvBlock(conv_in, conv_out, use_pixelnorm=False, ws=ws))
            channels = conv_in
        self.avg_pool = nn.AvgPool2d(kernel_size=2, stride=2)
        self.conv = ws(in_channels + 1, z_dim, kernel_size=4, stride=1, padding=0)
        self.linear = nn.Linear(z_dim, 1)

    def fade_in(self, alpha, downscaled, out):
        return alpha * out + (1 - alpha) * downscaled

    def minibatch_std(self, x):
        batch_statistics = (
            torch.std(x, dim=0).mean().repeat(x.shape[0], 1, x.shape[2], x.shape[3]))
        return torch.cat([x, batch_statistics], dim=1)

    def forward(self, x, alpha, steps):
        out = self.rgb_layers[steps](x)
        if steps == 0:
            out = self.minibatch_std(out)
            out = self.conv(out)
            return self.linear(out.view(-1, out.shape[1]))
        downscaled = self.rgb_layers[steps - 1](self.avg_pool(x))
        out = self.avg_pool(self.prog_blocks[steps](out))
        out = self.fade_in(alpha, downscaled, out)
        for step in range(steps - 1, 0, -1):
            downscaled = self.avg_pool(out)
            out = self.prog_blocks[step](downscaled)
        out = self.minibatch_std(out)
        out = self.conv(out)
        return self.linear(out.view(-1, out.shape[1]))


# ---- seed 001: CycleGAN --------------------------------------------------------------------------

class ResidualBlock(nn.Module):
    def __init__(self, in_features):
        super().__init__()
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(in_features, in_features, 3),
            nn.InstanceNorm2d(in_features),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(in_features, in_features, 3),
            nn.InstanceNorm2d(in_features),
        )

    def forward(self, x):
        return x + self.block(x)


class GeneratorResNet(nn.Module):
    """Seed 001's generator; ``ngf`` (64 in the seed) is a parameter so tests can stay small."""

    def __init__(self, input_shape, num_residual_blocks, ngf=64):
        super().__init__()
        channels = input_shape[0]
        out_features = ngf
        model = [nn.ReflectionPad2d(channels), nn.Conv2d(channels, out_features, 7),
                 nn.InstanceNorm2d(out_features), nn.ReLU(inplace=True)]
        in_features = out_features
        for _ in range(2):
            out_features *= 2
            model += [nn.Conv2d(in_features, out_features, 3, stride=2, padding=1),
                      nn.InstanceNorm2d(out_features), nn.ReLU(inplace=True)]
            in_features = out_features
        for _ in range(num_residual_blocks):
            model += [ResidualBlock(out_features)]
        for _ in range(2):
            out_features //= 2
            model += [nn.Upsample(scale_factor=2),
                      nn.Conv2d(in_features, out_features, 3, stride=1, padding=1),
                      nn.InstanceNorm2d(out_features), nn.ReLU(inplace=True)]
            in_features = out_features
        model += [nn.ReflectionPad2d(channels), nn.Conv2d(out_features, channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*model)

    def forward(self, x):
        return self.model(x)


class CycleDiscriminator(nn.Module):
    """Seed 001's PatchGAN; ``ndf`` (64 in the seed) is a parameter so tests can stay small."""

    def __init__(self, input_shape, ndf=64):
        super().__init__()
        channels, height, width = input_shape
        self.output_shape = (1, height // 2 ** 4, width // 2 ** 4)

        def discriminator_block(in_filters, out_filters, normalize=True):
            layers = [nn.Conv2d(in_filters, out_filters, 4, stride=2, padding=1)]
            if normalize:
                layers.append(nn.InstanceNorm2d(out_filters))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            return layers

        self.model = nn.Sequential(
            *discriminator_block(channels, ndf, normalize=False),
            *discriminator_block(ndf, ndf * 2),
            *discriminator_block(ndf * 2, ndf * 4),
            *discriminator_block(ndf * 4, ndf * 8),
            nn.ZeroPad2d((1, 0, 1, 0)),
            nn.Conv2d(ndf * 8, 1, 4, padding=1))

    def forward(self, img):
        return self.model(img)


# ---- seed 002: WGAN-GP MLPs ----------------------------------------------------------------------

class WGenerator(nn.Module):
    def __init__(self, noise_size, g_middle_size, g_output_size):
        super().__init__()
        self.gen = nn.Sequential(
            nn.Linear(noise_size, g_middle_size), nn.ReLU(True),
            nn.Linear(g_middle_size, g_middle_size), nn.ReLU(True),
            nn.Linear(g_middle_size, g_middle_size), nn.ReLU(True),
            nn.Linear(g_middle_size, g_output_size))

    def forward(self, x):
        return self.gen(x)


class WDiscriminator(nn.Module):
    def __init__(self, g_output_size, d_middle_size, wgan=False):
        super().__init__()
        self.wgan = wgan
        self.disc = nn.Sequential(
            nn.Linear(g_output_size, d_middle_size), nn.ReLU(True),
            nn.Linear(d_middle_size, d_middle_size), nn.ReLU(True),
            nn.Linear(d_middle_size, d_middle_size), nn.ReLU(True),
            nn.Linear(d_middle_size, 1))
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        output = self.disc(x)
        if not self.wgan:
            output = self.sigmoid(output)
        return output


# ---- seed 004: MLP GAN ---------------------------------------------------------------------------

def get_generator_block(input_dim, output_dim):
    return nn.Sequential(nn.Linear(input_dim, output_dim), nn.BatchNorm1d(output_dim),
                         nn.ReLU(inplace=True))


class MLPGenerator(nn.Module):
    def __init__(self, z_dim=10, im_dim=784, hidden_dim=128):
        super().__init__()
        self.gen = nn.Sequential(
            get_generator_block(z_dim, hidden_dim),
            get_generator_block(hidden_dim, hidden_dim * 2),
            get_generator_block(hidden_dim * 2, hidden_dim * 4),
            get_generator_block(hidden_dim * 4, hidden_dim * 8),
            nn.Linear(hidden_dim * 8, im_dim),
            nn.Sigmoid())

    def forward(self, noise):
        return self.gen(noise)


def get_discriminator_block(input_dim, output_dim):
    return nn.Sequential(nn.Linear(input_dim, output_dim), nn.LeakyReLU(0.2, inplace=True))


class MLPDiscriminator(nn.Module):
    def __init__(self, im_dim=784, hidden_dim=128):
        super().__init__()
        self.disc = nn.Sequential(
            get_discriminator_block(im_dim, hidden_dim * 4),
            get_discriminator_block(hidden_dim * 4, hidden_dim * 2),
            get_discriminator_block(hidden_dim * 2, hidden_dim),
            nn.Linear(hidden_dim, 1))

    def forward(self, image):
        return self.disc(image)
