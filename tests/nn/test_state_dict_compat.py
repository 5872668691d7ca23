"""A state_dict saved from weight-scaled conv and pixel-norm layers written the common tutorial
way loads into pygan.nn and gives the same outputs.

The tutorial layers below are written here the way popular ProGAN code writes them: the
convolution's bias is moved out to the layer (keys ``conv.weight`` and ``bias``) and the input
is multiplied by the scale before the convolution. A second common layout keeps the bias inside
the convolution (``conv.weight`` and ``conv.bias``). pygan applies the scale after the bias-free
convolution, inside the fused epilogue: the same value up to the rounding of one reordered
multiplication, so outputs are compared in float64 to 1e-12.
"""

import pytest
import torch
from torch import nn

import pygan.nn as pnn
import pygan.ops as ops

F64 = torch.float64


class TutorialWSConv2d(nn.Module):
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


class BiasInsideWSConv2d(nn.Module):
    """The other common layout: the convolution keeps its bias."""

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding=1, gain=2):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding)
        self.scale = (gain / (in_channels * kernel_size * kernel_size)) ** 0.5
        nn.init.normal_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x):
        return self.conv(x * self.scale)


class TutorialPixelNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.epsilon = 1e-8

    def forward(self, x):
        return x / torch.sqrt(torch.mean(x ** 2, dim=1, keepdim=True) + self.epsilon)


class Block(nn.Module):
    """A ProGAN-style generator block and toRGB, built from whichever layer classes are given."""

    def __init__(self, conv_cls, norm_cls, in_ch=6, out_ch=5, img_ch=3):
        super().__init__()
        self.conv1 = conv_cls(in_ch, out_ch)
        self.conv2 = conv_cls(out_ch, out_ch)
        self.leaky = nn.LeakyReLU(0.2)
        self.pn = norm_cls()
        self.down = conv_cls(out_ch, out_ch, 4, 2, 1)
        self.rgb = conv_cls(out_ch, img_ch, kernel_size=1, stride=1, padding=0, gain=1)

    def forward(self, x):
        x = self.pn(self.leaky(self.conv1(x)))
        x = self.pn(self.leaky(self.conv2(x)))
        return self.rgb(self.down(x))


def trained_like(model):
    """Non-zero biases, as after training, so that the bias keys are really exercised."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_()
    return model.double()


@pytest.mark.parametrize("layout", [TutorialWSConv2d, BiasInsideWSConv2d], ids=["bias", "conv.bias"])
@pytest.mark.parametrize("backend", ["reference", "cpp"])
def test_tutorial_state_dict_loads_and_matches(layout, backend):
    status = ops.available_backends()[backend]
    if not status.available:
        pytest.skip(f"{backend} backend unavailable: " + status.reason)
    tutorial = trained_like(Block(layout, TutorialPixelNorm))
    ours = Block(pnn.WSConv2d, pnn.PixelNorm).double()
    result = ours.load_state_dict(tutorial.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    x = torch.randn(2, 6, 8, 8, dtype=F64)
    with ops.use_backend(backend):
        out = ours(x)
    torch.testing.assert_close(out, tutorial(x), rtol=1e-12, atol=1e-12)
    for name in ("conv1", "conv2", "down", "rgb"):
        assert getattr(ours, name).scale == getattr(tutorial, name).scale


def test_state_dict_keys_are_the_tutorial_keys_both_ways():
    tutorial = trained_like(Block(TutorialWSConv2d, TutorialPixelNorm))
    ours = trained_like(Block(pnn.WSConv2d, pnn.PixelNorm))
    assert list(ours.state_dict()) == list(tutorial.state_dict())
    tutorial.load_state_dict(ours.state_dict(), strict=True)   # and back again
    x = torch.randn(1, 6, 4, 4, dtype=F64)
    torch.testing.assert_close(ours(x), tutorial(x), rtol=1e-12, atol=1e-12)


def test_bias_inside_layout_still_rejects_unknown_keys():
    state = trained_like(Block(BiasInsideWSConv2d, TutorialPixelNorm)).state_dict()
    state["conv1.extra"] = torch.zeros(1)
    with pytest.raises(RuntimeError, match="conv1.extra"):
        Block(pnn.WSConv2d, pnn.PixelNorm).double().load_state_dict(state, strict=True)
