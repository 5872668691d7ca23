"""pygan.nn.InstanceNormAct: nn.InstanceNorm2d's maths and state, with the activation and the
residual add fused."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import pygan.nn as pnn
import pygan.ops as ops


@pytest.mark.parametrize("affine", [False, True])
def test_state_dict_compatible_with_instance_norm2d(affine):
    ref = nn.InstanceNorm2d(7, affine=affine)
    layer = pnn.InstanceNormAct(7, affine=affine)
    assert list(layer.state_dict()) == list(ref.state_dict())
    assert sum(p.numel() for p in layer.parameters()) == sum(p.numel() for p in ref.parameters())
    for (k, v), (k2, v2) in zip(layer.state_dict().items(), ref.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)           # same init: weight ones, bias zeros
    if affine:
        with torch.no_grad():
            ref.weight.normal_()
            ref.bias.normal_()
        layer.load_state_dict(ref.state_dict())
        ref.load_state_dict(layer.state_dict())
        assert torch.equal(layer.weight, ref.weight) and torch.equal(layer.bias, ref.bias)


@pytest.mark.parametrize("backend", ["reference", "cpp"])
@pytest.mark.parametrize("activation", [None, "relu", "lrelu"])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last], ids=str)
def test_matches_instance_norm2d_then_activation(backend, activation, memory_format):
    ref = nn.InstanceNorm2d(5, affine=True).double()
    with torch.no_grad():
        ref.weight.normal_()
        ref.bias.normal_()
    layer = pnn.InstanceNormAct(5, affine=True, activation=activation, negative_slope=0.1).double()
    layer.load_state_dict(ref.state_dict())
    x = (torch.randn(3, 5, 6, 7, dtype=torch.float64) * 3 + 1).contiguous(memory_format=memory_format)
    r = torch.randn_like(x)
    y = ref(x)
    y = {None: y, "relu": F.relu(y), "lrelu": F.leaky_relu(y, 0.1)}[activation]
    with ops.use_backend(backend):
        torch.testing.assert_close(layer(x), y, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(layer(x, residual=r), y + r, rtol=1e-12, atol=1e-12)


def test_gradients_reach_affine_parameters():
    ref = nn.InstanceNorm2d(4, affine=True).double()
    layer = pnn.InstanceNormAct(4, affine=True, activation="relu").double()
    with torch.no_grad():
        ref.bias.fill_(0.3)
    layer.load_state_dict(ref.state_dict())
    x = torch.randn(2, 4, 5, 5, dtype=torch.float64)
    F.relu(ref(x)).square().sum().backward()
    layer(x).square().sum().backward()
    torch.testing.assert_close(layer.weight.grad, ref.weight.grad)
    torch.testing.assert_close(layer.bias.grad, ref.bias.grad)


def test_runs_under_autocast_with_a_float32_residual():
    """Under bf16 autocast a conv gives bfloat16 while the skip path stays float32: the layer
    promotes like ``norm(h) + x`` does."""
    conv = nn.Conv2d(6, 6, 3, padding=1)
    layer = pnn.InstanceNormAct(6, affine=True, activation="lrelu")
    x = torch.randn(2, 6, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = conv(x)
        y = layer(h)
        z = layer(h, residual=x)
    assert h.dtype == y.dtype == torch.bfloat16 and z.dtype == torch.float32
    torch.testing.assert_close(z, y.float() + x)
    expected = F.leaky_relu(F.instance_norm(h.float(), weight=layer.weight, bias=layer.bias), 0.2)
    torch.testing.assert_close(y.float(), expected, rtol=2e-2, atol=2e-2)


def test_is_an_instance_norm2d():
    """Code that finds norm layers by type (init schemes, norm swaps) finds it."""
    layer = pnn.InstanceNormAct(4, affine=True, activation="relu")
    assert isinstance(layer, nn.InstanceNorm2d) and not layer.track_running_stats
    assert layer.running_mean is None and layer.num_features == 4 and layer.eps == 1e-5


def test_repr():
    assert repr(pnn.InstanceNormAct(8, affine=True, activation="lrelu")) == (
        "InstanceNormAct(8, eps=1e-05, affine=True, activation='lrelu', negative_slope=0.2)")
    assert repr(pnn.InstanceNormAct(3)) == "InstanceNormAct(3, eps=1e-05, affine=False)"


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(num_features=0), ValueError, "num_features must be >= 1"),
    (dict(num_features=2.0), TypeError, "num_features must be an int"),
    (dict(num_features=2, affine=1), TypeError, "affine must be a bool"),
    (dict(num_features=2, activation="tanh"), ValueError, "activation must be one of"),
    (dict(num_features=2, negative_slope=-1.0), ValueError, "negative_slope must be >= 0"),
    (dict(num_features=2, eps=-1.0), ValueError, "eps must be >= 0"),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        pnn.InstanceNormAct(**kwargs)


def test_wrong_channel_count_names_num_features():
    with pytest.raises(ValueError, match="x has 3 channels but this InstanceNormAct was built for num_features=4"):
        pnn.InstanceNormAct(4)(torch.randn(2, 3, 4, 4))


# --- pygan's CycleGAN networks use InstanceNormAct ---------------------------------------------

# state_dict keys of the authors' layout (``model.<i>`` indices of convolutions), as they were
# with nn.InstanceNorm2d + a separate activation module
G_KEYS = ["model.1", "model.4", "model.7", "model.10.conv_block.1", "model.10.conv_block.5",
          "model.11.conv_block.1", "model.11.conv_block.5", "model.12", "model.15", "model.19"]
D_KEYS = ["model.0", "model.2", "model.5", "model.8", "model.11"]


class _TorchNormAct(nn.InstanceNorm2d):
    """The unfused computation: torch's InstanceNorm2d, then the activation, then the add."""

    def __init__(self, fused):
        super().__init__(fused.num_features, eps=fused.eps, affine=fused.affine)
        self.activation, self.negative_slope = fused.activation, fused.negative_slope

    def forward(self, x, residual=None):
        y = super().forward(x)
        if self.activation == "relu":
            y = F.relu(y)
        elif self.activation == "lrelu":
            y = F.leaky_relu(y, self.negative_slope)
        return y if residual is None else residual + y


def _unfused_copy(model):
    """The model with torch's norms, and residual blocks computing the authors' ``x + block(x)``."""
    import copy
    import types

    from pygan.models.cyclegan import ResnetBlock
    ref = copy.deepcopy(model)
    for module in list(ref.modules()):
        for name, child in module.named_children():
            if isinstance(child, pnn.InstanceNormAct):
                setattr(module, name, _TorchNormAct(child))
        if isinstance(module, ResnetBlock):
            module.forward = types.MethodType(lambda self, x: x + self.conv_block(x), module)
    return ref


def test_cyclegan_uses_instance_norm_act_with_the_authors_keys():
    from pygan.models.cyclegan import PatchDiscriminator, ResnetGenerator
    G, D = ResnetGenerator(base_channels=8, num_blocks=2), PatchDiscriminator(base_channels=8)
    for model, keys in ((G, G_KEYS), (D, D_KEYS)):
        assert any(isinstance(m, pnn.InstanceNormAct) for m in model.modules())
        assert not any(type(m) is nn.InstanceNorm2d for m in model.modules())
        assert list(model.state_dict()) == [f"{k}.{p}" for k in keys for p in ("weight", "bias")]
    acts = [m.activation for m in G.modules() if isinstance(m, pnn.InstanceNormAct)]
    assert acts == ["relu", "relu", "relu", "relu", None, "relu", None, "relu", "relu"]
    acts = [m.activation for m in D.modules() if isinstance(m, pnn.InstanceNormAct)]
    assert acts == ["lrelu"] * 3


@pytest.mark.parametrize("backend", ["reference", "cpp"])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last], ids=str)
def test_cyclegan_outputs_equal_the_instance_norm2d_version(backend, memory_format):
    """Generator and discriminator, forward and parameter gradients, against copies whose norms
    are torch's InstanceNorm2d followed by the activation (and the residual add), float64."""
    from pygan.models.cyclegan import PatchDiscriminator, ResnetGenerator
    torch.manual_seed(1)
    for model, size in ((ResnetGenerator(base_channels=8, num_blocks=2), 32),
                        (PatchDiscriminator(base_channels=8), 64)):
        model = model.double().to(memory_format=memory_format)
        ref = _unfused_copy(model)
        x = torch.randn(2, 3, size, size, dtype=torch.float64).contiguous(memory_format=memory_format)
        with ops.use_backend(backend):
            y = model(x)
            grads = torch.autograd.grad(y.square().sum(), list(model.parameters()))
        y_ref = ref(x)
        grads_ref = torch.autograd.grad(y_ref.square().sum(), list(ref.parameters()))
        torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-10)
        for g, gr in zip(grads, grads_ref):
            torch.testing.assert_close(g, gr, rtol=1e-9, atol=1e-9)
