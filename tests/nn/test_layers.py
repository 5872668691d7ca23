"""pygan.nn layers against their maths written out in plain PyTorch (float64), in NCHW and
channels_last, under bf16/fp16 autocast, with the constructor state of common ProGAN code, and
with clear errors for bad arguments."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import pygan.nn as pnn
import pygan.ops as ops

F64 = torch.float64


def pixel_norm_maths(x, eps=1e-8):
    return x / torch.sqrt(x.pow(2).mean(dim=1, keepdim=True) + eps)


def epilogue_maths(y, bias, scale, activation, pixel_norm, slope=0.2):
    y = y * scale
    if bias is not None:
        y = y + bias.view(1, -1, *([1] * (y.dim() - 2)))
    if activation == "lrelu":
        y = torch.where(y > 0, y, slope * y)
    return pixel_norm_maths(y) if pixel_norm else y


def randomize_bias(module):
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("bias"):
                p.normal_()
    return module


# --- maths --------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(5, 7), (2, 3, 4, 5), (1, 1, 1, 1), (3, 6, 2, 2, 2)])
def test_pixel_norm_normalises_channels(shape):
    x = torch.randn(shape, dtype=F64)
    y = pnn.PixelNorm()(x)
    torch.testing.assert_close(y, pixel_norm_maths(x), rtol=1e-13, atol=1e-13)
    rms = y.pow(2).mean(dim=1)
    torch.testing.assert_close(rms, torch.ones_like(rms), rtol=1e-6, atol=0)  # eps=1e-8 shifts it by ~1e-8


def test_pixel_norm_eps_is_used():
    x = torch.zeros(2, 3, 1, 1, dtype=F64)
    x[0, 0] = 1e-3
    y = pnn.PixelNorm(eps=1e-2)(x)
    expected = 1e-3 / math.sqrt(1e-6 / 3 + 1e-2)
    assert y[0, 0, 0, 0].item() == pytest.approx(expected, rel=1e-12)
    assert torch.count_nonzero(y[1]) == 0


def test_ws_conv2d_initial_state_and_scale():
    layer = pnn.WSConv2d(64, 48, kernel_size=3)
    w = layer.conv.weight
    assert layer.conv.bias is None
    assert set(layer.state_dict()) == {"conv.weight", "bias"}
    assert torch.count_nonzero(layer.bias) == 0
    # N(0, 1) weights: 27,648 draws put the sample mean within 0.03 and the std within 0.02 of (0, 1)
    assert abs(w.mean().item()) < 0.03 and abs(w.std().item() - 1) < 0.02
    assert layer.scale == pytest.approx(math.sqrt(2 / (64 * 9)), rel=1e-15)
    assert pnn.WSConv2d(8, 3, 1, 1, 0, gain=1).scale == pytest.approx(math.sqrt(1 / 8), rel=1e-15)


@pytest.mark.parametrize("kernel_size,stride,padding", [(3, 1, 1), (1, 1, 0), (4, 2, 1), (4, 1, 0)])
def test_ws_conv2d_is_scaled_convolution_plus_bias(kernel_size, stride, padding):
    layer = randomize_bias(pnn.WSConv2d(5, 7, kernel_size, stride, padding, gain=3)).double()
    x = torch.randn(2, 5, 8, 8, dtype=F64)
    expected = F.conv2d(x, layer.conv.weight, stride=stride, padding=padding)
    expected = expected * math.sqrt(3 / (5 * kernel_size**2)) + layer.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(layer(x), expected, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("activation", [None, "linear", "lrelu"])
@pytest.mark.parametrize("pixel_norm", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_equalized_conv2d_maths(activation, pixel_norm, bias):
    layer = randomize_bias(pnn.EqualizedConv2d(6, 5, 3, bias=bias, gain=2.0, activation=activation,
                                               pixel_norm=pixel_norm)).double()
    assert set(layer.state_dict()) == ({"weight", "bias"} if bias else {"weight"})
    x = torch.randn(3, 6, 5, 5, dtype=F64)
    expected = epilogue_maths(F.conv2d(x, layer.weight, padding=1), layer.bias,
                              math.sqrt(2 / 54), activation, pixel_norm)
    torch.testing.assert_close(layer(x), expected, rtol=1e-13, atol=1e-13)


def test_equalized_conv2d_stride_padding_and_slope():
    layer = randomize_bias(pnn.EqualizedConv2d(3, 4, 4, stride=2, padding=0, activation="lrelu",
                                               negative_slope=0.1, gain=1.0)).double()
    x = torch.randn(2, 3, 10, 10, dtype=F64)
    expected = epilogue_maths(F.conv2d(x, layer.weight, stride=2), layer.bias, math.sqrt(1 / 48),
                              "lrelu", False, slope=0.1)
    assert layer(x).shape == (2, 4, 4, 4)
    torch.testing.assert_close(layer(x), expected, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("activation,pixel_norm", [(None, False), ("lrelu", False), ("lrelu", True)])
def test_equalized_linear_maths(activation, pixel_norm):
    layer = randomize_bias(pnn.EqualizedLinear(9, 6, activation=activation,
                                               pixel_norm=pixel_norm, gain=0.5)).double()
    x = torch.randn(4, 9, dtype=F64)
    expected = epilogue_maths(x @ layer.weight.T, layer.bias, math.sqrt(0.5 / 9), activation, pixel_norm)
    torch.testing.assert_close(layer(x), expected, rtol=1e-13, atol=1e-13)


def test_equalized_layers_draw_unit_normal_weights_and_zero_bias():
    for layer in (pnn.EqualizedConv2d(64, 64, 3), pnn.EqualizedLinear(256, 128)):
        assert abs(layer.weight.mean().item()) < 0.03 and abs(layer.weight.std().item() - 1) < 0.02
        assert torch.count_nonzero(layer.bias) == 0


def minibatch_std_maths(x, group_size):
    """ProGAN's statistic written out sample by sample: group m holds samples m, m + M, ..."""
    N, C, H, W = x.shape
    G = min(group_size, N)
    M = N // G
    out = torch.empty(N, 1, H, W, dtype=x.dtype)
    for m in range(M):
        members = x[m::M]                                   # (G, C, H, W)
        std = (members.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
        out[m::M] = std
    return torch.cat([x, out], dim=1)


@pytest.mark.parametrize("n,group_size", [(8, 4), (4, 4), (6, 2), (3, 4), (1, 4)])
def test_minibatch_std_appends_group_statistic(n, group_size):
    x = torch.randn(n, 5, 3, 2, dtype=F64)
    y = pnn.MinibatchStd(group_size=group_size)(x)
    torch.testing.assert_close(y, minibatch_std_maths(x, group_size), rtol=1e-13, atol=1e-13)


def test_minibatch_std_channel_groups():
    x = torch.randn(4, 6, 2, 2, dtype=F64)
    y = pnn.MinibatchStd(group_size=4, num_channels=2)(x)
    assert y.shape == (4, 8, 2, 2)
    for f in range(2):
        part = x[:, 3 * f:3 * f + 3]
        expected = (part.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
        torch.testing.assert_close(y[:, 6 + f], expected.expand(4, 2, 2), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("alpha", [0.0, 0.25, 1.0, torch.tensor(0.7, dtype=F64)])
def test_fade_in_blends_upsampled_low(alpha):
    low, high = torch.randn(2, 3, 4, 4, dtype=F64), torch.randn(2, 3, 8, 8, dtype=F64)
    expected = alpha * high + (1 - alpha) * low.repeat_interleave(2, 2).repeat_interleave(2, 3)
    torch.testing.assert_close(pnn.FadeIn()(low, high, alpha), expected, rtol=1e-14, atol=1e-14)
    same = torch.randn(2, 3, 8, 8, dtype=F64)
    torch.testing.assert_close(pnn.FadeIn()(same, high, alpha), alpha * high + (1 - alpha) * same,
                               rtol=1e-14, atol=1e-14)


def test_fade_in_promotes_mixed_dtypes():
    low, high = torch.randn(1, 2, 2, 2), torch.randn(1, 2, 4, 4, dtype=torch.bfloat16)
    y = pnn.FadeIn()(low, high, 0.5)
    assert y.dtype == torch.float32
    expected = 0.5 * high.float() + 0.5 * low.repeat_interleave(2, 2).repeat_interleave(2, 3)
    torch.testing.assert_close(y, expected)


@pytest.mark.parametrize("slope", [0.01, 0.2])
def test_leaky_relu_and_relu_match_torch(slope):
    x = torch.randn(3, 4, 5, dtype=F64)
    torch.testing.assert_close(pnn.LeakyReLU(slope)(x), nn.LeakyReLU(slope)(x), rtol=0, atol=0)
    torch.testing.assert_close(pnn.ReLU()(x), nn.ReLU()(x), rtol=0, atol=0)
    assert pnn.LeakyReLU().negative_slope == nn.LeakyReLU().negative_slope


@pytest.mark.parametrize("pixel_norm", [False, True])
def test_bias_leaky_relu(pixel_norm):
    layer = randomize_bias(pnn.BiasLeakyReLU(4, negative_slope=0.3, gain=1.5, pixel_norm=pixel_norm)).double()
    x = torch.randn(2, 4, 3, 3, dtype=F64)
    expected = 1.5 * F.leaky_relu(x + layer.bias.view(1, -1, 1, 1), 0.3)
    expected = pixel_norm_maths(expected) if pixel_norm else expected
    torch.testing.assert_close(layer(x), expected, rtol=1e-13, atol=1e-13)


# --- backend selection reaches the layers ---------------------------------------------------

def layer_cases():
    """(name, layer, inputs, the op that must run) for every layer."""
    x = torch.randn(4, 3, 4, 4, dtype=F64, requires_grad=True)
    return [
        ("PixelNorm", pnn.PixelNorm(), (x,), "pixel_norm"),
        ("WSConv2d", pnn.WSConv2d(3, 5).double(), (x,), "bias_lrelu"),
        ("EqualizedConv2d", pnn.EqualizedConv2d(3, 5, activation="lrelu").double(), (x,), "bias_lrelu"),
        ("EqualizedConv2d+pn", pnn.EqualizedConv2d(3, 5, activation="lrelu", pixel_norm=True).double(),
         (x,), "bias_lrelu_pixel_norm"),
        ("EqualizedLinear", pnn.EqualizedLinear(3, 2, activation="lrelu").double(),
         (x.flatten(1)[:, :3],), "bias_lrelu"),
        ("MinibatchStd", pnn.MinibatchStd(), (x,), "minibatch_std"),
        ("FadeIn", pnn.FadeIn(), (x[:, :, :2, :2], x, 0.3), "fade_in"),
        ("LeakyReLU", pnn.LeakyReLU(0.2), (x,), "bias_lrelu"),
        ("BiasLeakyReLU", pnn.BiasLeakyReLU(3), (x,), "bias_lrelu"),
    ]


@pytest.mark.parametrize("case", range(len(layer_cases())), ids=[c[0] for c in layer_cases()])
def test_use_backend_reaches_every_layer(case):
    status = ops.available_backends()["cpp"]
    if not status.available:
        pytest.skip("cpp backend unavailable: " + status.reason)
    _, layer, inputs, op = layer_cases()[case]
    with ops.use_backend("cpp"):
        compiled = type(layer(*inputs).grad_fn).__name__
    with ops.use_backend("reference"):
        reference = type(layer(*inputs).grad_fn).__name__
    assert f"pygan_{op}_" in compiled, compiled
    assert "pygan" not in reference, reference


# --- memory layouts and autocast ---------------------------------------------------------------

def test_every_layer_accepts_channels_last():
    for name, layer, inputs, _ in layer_cases():
        plain = layer(*inputs)
        cl = [t.contiguous(memory_format=torch.channels_last) if isinstance(t, torch.Tensor) and t.dim() == 4
              else t for t in inputs]
        torch.testing.assert_close(layer(*cl), plain, rtol=1e-13, atol=1e-13, msg=lambda m: f"{name}: {m}")


def autocast_cases():
    """(name, pygan call, plain-PyTorch twin, input dtype). The twin computes the same maths
    with stock PyTorch ops in the input's dtype, so under autocast its error is the error that
    the dtype itself causes."""
    ws = randomize_bias(pnn.WSConv2d(8, 6))
    eq = randomize_bias(pnn.EqualizedConv2d(8, 6, activation="lrelu", pixel_norm=True))
    lin = randomize_bias(pnn.EqualizedLinear(8, 6, activation="lrelu"))
    act = randomize_bias(pnn.BiasLeakyReLU(8, pixel_norm=True))
    low = torch.randn(4, 8, 2, 2, generator=torch.Generator().manual_seed(3))
    fade_in, minibatch_std = pnn.FadeIn(), pnn.MinibatchStd()

    def like(t, x):
        return t.to(x.dtype)

    def low_like(x):
        return like(low, x).contiguous(memory_format=torch.channels_last)

    def ws_twin(x):
        return F.conv2d(x * ws.scale, like(ws.conv.weight, x), like(ws.bias, x), padding=1)

    def eq_twin(x):
        y = F.conv2d(x, like(eq.weight * eq.scale, x), like(eq.bias, x), padding=1)
        return pixel_norm_maths(F.leaky_relu(y, 0.2))

    def lin_twin(x):
        return F.leaky_relu(F.linear(x[:, :, 0, 0], like(lin.weight * lin.scale, x), like(lin.bias, x)), 0.2)

    def act_twin(x):
        return pixel_norm_maths(F.leaky_relu(x + like(act.bias, x).view(1, -1, 1, 1), 0.2))

    def fade_twin(x):
        return 0.3 * x + 0.7 * low_like(x).repeat_interleave(2, 2).repeat_interleave(2, 3)

    return [
        ("PixelNorm", pnn.PixelNorm(), pixel_norm_maths, "low"),
        ("WSConv2d", ws, ws_twin, "float32"),
        ("EqualizedConv2d", eq, eq_twin, "float32"),
        ("EqualizedLinear", lambda x: lin(x[:, :, 0, 0]), lin_twin, "float32"),
        ("MinibatchStd", minibatch_std, lambda x: minibatch_std_maths(x, 4), "low"),
        ("FadeIn", lambda x: fade_in(low_like(x), x, 0.3), fade_twin, "low"),
        ("LeakyReLU", pnn.LeakyReLU(0.2), lambda x: F.leaky_relu(x, 0.2), "low"),
        ("BiasLeakyReLU", act, act_twin, "low"),
    ]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_every_layer_runs_under_autocast_channels_last(dtype):
    """Error against float64 at most twice the plain-PyTorch twin's under the same autocast,
    or one unit in the last place of the output dtype at the output's scale."""
    x32 = torch.randn(4, 8, 4, 4, generator=torch.Generator().manual_seed(4))
    for name, ours_fn, twin_fn, input_dtype in autocast_cases():
        x = (x32 if input_dtype == "float32" else x32.to(dtype)).contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            truth = twin_fn(x.double())
            with torch.autocast("cpu", dtype=dtype):
                ours, theirs = ours_fn(x), twin_fn(x)
        assert ours.dtype == dtype == theirs.dtype, f"{name}: {ours.dtype} / {theirs.dtype}"
        assert torch.isfinite(ours).all(), name
        err = (ours.double() - truth).abs().max().item()
        twin_err = (theirs.double() - truth).abs().max().item()
        ulp = torch.finfo(dtype).eps * truth.abs().max().item()
        assert err <= max(2 * twin_err, ulp), f"{name}: error {err:.3g} vs twin {twin_err:.3g}"


def test_autocast_backward_reaches_float32_parameters():
    layer = pnn.EqualizedConv2d(8, 6, activation="lrelu", pixel_norm=True)
    x = torch.randn(4, 8, 4, 4).contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x)
    y.float().square().sum().backward()
    assert layer.weight.grad.dtype == layer.bias.grad.dtype == torch.float32
    assert layer.weight.grad.abs().sum() > 0 and layer.bias.grad.abs().sum() > 0


# --- argument checks ---------------------------------------------------------------------------

@pytest.mark.parametrize("make,error,words", [
    (lambda: pnn.WSConv2d(0, 3), ValueError, "in_channels"),
    (lambda: pnn.WSConv2d(3, 3, kernel_size=2.0), TypeError, "kernel_size"),
    (lambda: pnn.WSConv2d(3, 3, padding=-1), ValueError, "padding"),
    (lambda: pnn.WSConv2d(3, 3, gain=0), ValueError, "gain"),
    (lambda: pnn.EqualizedConv2d(3, 3, activation="relu"), ValueError, "activation"),
    (lambda: pnn.EqualizedConv2d(3, 3, pixel_norm=1), TypeError, "pixel_norm"),
    (lambda: pnn.EqualizedLinear(3, 3, negative_slope=-0.1), ValueError, "negative_slope"),
    (lambda: pnn.EqualizedLinear(3, 3, bias="yes"), TypeError, "bias"),
    (lambda: pnn.PixelNorm(eps=-1.0), ValueError, "eps"),
    (lambda: pnn.MinibatchStd(group_size=0), ValueError, "group_size"),
    (lambda: pnn.MinibatchStd(num_channels=1.5), TypeError, "num_channels"),
    (lambda: pnn.BiasLeakyReLU(4, gain=-1.0), ValueError, "gain"),
    (lambda: pnn.LeakyReLU(inplace=None), TypeError, "inplace"),
])
def test_bad_constructor_arguments_are_named(make, error, words):
    with pytest.raises(error, match=words):
        make()


def test_bad_forward_inputs_are_named():
    with pytest.raises(ValueError, match=r"EqualizedLinear expects x of shape \(N, 3\)"):
        pnn.EqualizedLinear(3, 2)(torch.randn(2, 4, 3))
    with pytest.raises(ValueError, match="batch size"):
        pnn.MinibatchStd(group_size=4)(torch.randn(6, 2, 2, 2))
    with pytest.raises(ValueError, match="low must have the shape of high"):
        pnn.FadeIn()(torch.randn(1, 2, 3, 3), torch.randn(1, 2, 8, 8), 0.5)
    with pytest.raises(ValueError, match="alpha"):
        pnn.FadeIn()(torch.randn(1, 2, 4, 4), torch.randn(1, 2, 8, 8), 1.5)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        pnn.PixelNorm()([1.0, 2.0])
