"""Every pygan.nn layer under a compiled backend gives the reference backend's outputs, first-
order gradients and WGAN-GP (second-order) parameter gradients, in float64 to 1e-12."""

import pytest
import torch

import pygan.nn as pnn
import pygan.ops as ops

F64 = torch.float64
TOL = dict(rtol=1e-12, atol=1e-12)


@pytest.fixture(params=["cpp"])
def backend(request):
    status = ops.available_backends()[request.param]
    if not status.available:
        pytest.skip(f"{request.param} backend unavailable: " + status.reason)
    return request.param


def nonzero_biases(module):
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("bias"):
                p.normal_()
    return module.double()


LAYERS = {
    "PixelNorm": lambda: pnn.PixelNorm(),
    "WSConv2d": lambda: pnn.WSConv2d(3, 5),
    "EqualizedConv2d-lrelu": lambda: pnn.EqualizedConv2d(3, 5, activation="lrelu"),
    "EqualizedConv2d-lrelu-pn": lambda: pnn.EqualizedConv2d(3, 5, activation="lrelu", pixel_norm=True),
    "EqualizedConv2d-linear-stride2": lambda: pnn.EqualizedConv2d(3, 4, 4, stride=2, padding=1),
    "EqualizedLinear-lrelu-pn": lambda: pnn.EqualizedLinear(48, 7, activation="lrelu", pixel_norm=True),
    "MinibatchStd": lambda: pnn.MinibatchStd(group_size=2),
    "FadeIn": lambda: pnn.FadeIn(),
    "LeakyReLU": lambda: pnn.LeakyReLU(0.2),
    "ReLU": lambda: pnn.ReLU(),
    "BiasLeakyReLU-pn": lambda: pnn.BiasLeakyReLU(3, gain=1.4, pixel_norm=True),
}


def apply(name, layer, x):
    if name.startswith("EqualizedLinear"):
        return layer(x.flatten(1))
    if name == "FadeIn":
        return layer(x[:, :, ::2, ::2] * 0.5, x, 0.3)
    return layer(x)


def run(name, backend, memory_format):
    torch.manual_seed(0)
    layer = nonzero_biases(LAYERS[name]())
    x = torch.randn(4, 3, 4, 4, dtype=F64).contiguous(memory_format=memory_format).requires_grad_()
    weight = torch.randn(4, 1, 1, 1, dtype=F64)   # a per-sample weighting so the loss is not symmetric
    params = list(layer.parameters())
    with ops.use_backend(backend):
        out = apply(name, layer, x)
        loss = (out.pow(2) * weight.view(-1, *[1] * (out.dim() - 1))).sum()
        first = torch.autograd.grad(loss, [x, *params], create_graph=True)
        # a WGAN-GP-shaped second-order term: the input-gradient norm, differentiated again
        penalty = first[0].flatten(1).norm(dim=1).sub(1).square().mean()
        second = torch.autograd.grad(penalty, [x, *params])
    return out.detach(), [g.detach() for g in first], second


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last], ids=str)
@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_backend_matches_reference(name, backend, memory_format):
    out_ref, first_ref, second_ref = run(name, "reference", memory_format)
    out, first, second = run(name, backend, memory_format)
    torch.testing.assert_close(out, out_ref, **TOL)
    for i, (g, g_ref) in enumerate(zip(first + list(second), first_ref + list(second_ref))):
        assert g_ref.abs().max() > 0, f"{name}: reference gradient {i} is zero; the test would be vacuous"
        torch.testing.assert_close(g, g_ref, **TOL, msg=lambda m: f"{name}, gradient {i}: {m}")
