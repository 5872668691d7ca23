"""Drop-in layers for GAN code, each computed by pygan's fused ops (:mod:`pygan.ops`), so that
``pygan.ops.use_backend(...)`` / ``set_backend(...)`` reaches every model built from them.

    PixelNorm(eps=1e-8)
    WSConv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1, gain=2)
    EqualizedConv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=None, bias=True,
                    gain=2.0, activation=None, pixel_norm=False, negative_slope=0.2, eps=1e-8)
    EqualizedLinear(in_features, out_features, bias=True, gain=2.0, activation=None,
                    pixel_norm=False, negative_slope=0.2, eps=1e-8)
    MinibatchStd(group_size=4, num_channels=1, eps=1e-8)
    FadeIn()                                   forward(low, high, alpha)
    LeakyReLU(negative_slope=0.01, inplace=False), ReLU(inplace=False)
    BiasLeakyReLU(channels, negative_slope=0.2, gain=1.0, pixel_norm=False, eps=1e-8)
    InstanceNormAct(num_features, affine=False, activation=None, negative_slope=0.2, eps=1e-5)
                                               forward(x, residual=None)

Every layer accepts channels_last inputs and runs under bf16/fp16 autocast.
"""

from .activation import BiasLeakyReLU, LeakyReLU, ReLU
from .equalized import EqualizedConv2d, EqualizedLinear
from .fade_in import FadeIn
from .instance_norm_act import InstanceNormAct
from .minibatch_std import MinibatchStd
from .pixel_norm import PixelNorm
from .ws_conv import WSConv2d

__all__ = ["BiasLeakyReLU", "EqualizedConv2d", "EqualizedLinear", "FadeIn", "InstanceNormAct", "LeakyReLU",
           "MinibatchStd", "PixelNorm", "ReLU", "WSConv2d"]
