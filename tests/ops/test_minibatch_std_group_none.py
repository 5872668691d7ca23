"""minibatch_std over the whole minibatch (``group_size=None``, the statistic as the ProGAN paper
describes it and its Theano code computes it) on every backend that runs here, and the Theano
code's averaging variants of :class:`pygan.nn.MinibatchStd`.

What is checked: None is mapped to G = N before the compiled kernel is called (the kernel sees
the integer N); forward values equal the paper's definition written out here by hand and the
reference; first and second derivatives pass gradcheck/gradgradcheck through the fused kernels;
the variants ``all``, ``spatial``, ``none``, ``gpool``, ``flat`` and ``group<N>`` equal a
literal NumPy transcription of the Theano ``MinibatchStatConcatLayer`` with ``Tstdeps``.
"""

import numpy as np
import pytest
import torch
from op_harness import BACKEND_PARAMS, check_parity

import pygan.nn as pnn
import pygan.ops as ops
from pygan.ops import _registry

F64 = torch.float64


def whole_batch_by_hand(x: torch.Tensor, eps: float) -> torch.Tensor:
    """The paper's §3: per feature and pixel the std over the minibatch, averaged to one value,
    appended as one constant map."""
    sigma = ((x - x.mean(dim=0)).square().mean(dim=0) + eps).sqrt()       # (C, H, W)
    stat = sigma.mean().expand(x.shape[0], 1, *x.shape[2:])
    return torch.cat([x, stat], dim=1)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("shape", [(5, 3, 4, 4), (16, 8, 4, 4), (7, 1, 2, 3), (1, 4, 4, 4)], ids=str)
def test_none_is_the_whole_batch(backend, shape):
    x = torch.randn(shape, dtype=F64)
    out = ops.minibatch_std(x, None, 1, 1e-8, backend=backend)
    torch.testing.assert_close(out, whole_batch_by_hand(x, 1e-8), rtol=1e-12, atol=1e-12)
    # the same as naming N, or any group size >= N
    torch.testing.assert_close(out, ops.minibatch_std(x, shape[0], 1, 1e-8, backend=backend), rtol=0, atol=0)
    torch.testing.assert_close(out, ops.minibatch_std(x, 1000, 1, 1e-8, backend=backend), rtol=0, atol=0)
    if shape[0] % 4 == 0 and shape[0] > 4:   # and not what groups of 4 give
        assert not torch.allclose(out, ops.minibatch_std(x, 4, 1, 1e-8, backend=backend))


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_kernel_receives_n_not_none(backend, monkeypatch):
    """None is resolved to the integer N before the compiled op is called (its schema takes an int)."""
    seen = []
    real_namespace = _registry.namespace

    class Spy:
        def __init__(self, ns):
            self.ns = ns

        def minibatch_std(self, x, group_size, num_channels, eps, unbiased=False):
            seen.append(group_size)
            return self.ns.minibatch_std(x, group_size, num_channels, eps, unbiased)

    monkeypatch.setattr(_registry, "namespace", lambda impl: Spy(real_namespace(impl)))
    x = torch.randn(6, 4, 3, 3, dtype=F64)
    ops.minibatch_std(x, None, 2, backend=backend)
    assert seen == [6]


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("dtype", [F64, torch.float32, torch.bfloat16], ids=str)
def test_none_parity_with_gradients(backend, dtype):
    x = torch.randn(10, 6, 4, 4, dtype=F64)
    check_parity(lambda t: ops.minibatch_std(t, None, 2, backend=backend),
                 lambda t: ops.minibatch_std_reference(t, None, 2), [x], dtype)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last], ids=str)
def test_none_gradcheck_and_gradgradcheck(backend, memory_format):
    # small (12 elements): the Triton interpreter runs gradgradcheck's many launches slowly
    x = torch.randn(3, 2, 2, 1, dtype=F64).contiguous(memory_format=memory_format).requires_grad_()
    fn = lambda t: ops.minibatch_std(t, None, 2, 1e-4, backend=backend)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


def test_layer_accepts_none_and_uses_the_op(monkeypatch):
    calls = []
    real = ops.minibatch_std
    monkeypatch.setattr(ops, "minibatch_std", lambda *a, **k: calls.append(a[1:]) or real(*a, **k))
    layer = pnn.MinibatchStd(group_size=None)
    x = torch.randn(6, 3, 4, 4, dtype=F64)
    torch.testing.assert_close(layer(x), whole_batch_by_hand(x, 1e-8), rtol=1e-12, atol=1e-12)
    assert calls == [(None, 1, 1e-8)] and "group_size=None" in repr(layer)


# --- the Theano code's averaging variants ----------------------------------------------------

def theano_layer(x: np.ndarray, averaging: str, eps: float = 1e-8) -> np.ndarray:
    """``MinibatchStatConcatLayer.get_output_for`` with ``func=Tstdeps``, transcribed to NumPy."""
    def tstdeps(v, axis=None):
        return np.sqrt(np.mean(np.square(v - np.mean(v, axis=axis, keepdims=True)), axis=axis,
                               keepdims=True) + eps)
    s = list(x.shape)
    vals = tstdeps(x, axis=0)                                       # (1, C, H, W)
    reps = [s[0], 1, s[2], s[3]]
    if averaging == "all":
        vals = np.tile(np.mean(vals, keepdims=True), reps)
    elif averaging == "spatial":
        vals = np.tile(np.mean(vals, axis=(2, 3), keepdims=True), reps)
    elif averaging == "none":
        vals = np.repeat(vals, s[0], axis=0)
    elif averaging == "gpool":
        vals = np.tile(tstdeps(x, axis=(0, 2, 3)), reps)
    elif averaging == "flat":
        vals = np.tile(tstdeps(x), reps)
    else:
        n = int(averaging[len("group"):])
        vals = np.mean(vals.reshape(1, n, s[1] // n, s[2], s[3]), axis=(2, 3, 4), keepdims=True)
        vals = np.tile(vals.reshape(1, n, 1, 1), reps)
    return np.concatenate([x, vals], axis=1)


@pytest.mark.parametrize("averaging", ["all", "spatial", "none", "gpool", "flat", "group2", "group3"])
def test_averaging_variants_match_the_theano_code(averaging):
    x = torch.randn(6, 6, 3, 5, dtype=F64)
    layer = pnn.MinibatchStd(group_size=None, averaging=averaging)
    out = layer(x)
    expected = torch.from_numpy(theano_layer(x.numpy(), averaging))
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    assert out.shape[1] == 6 + layer.extra_channels(6)


@pytest.mark.parametrize("averaging", ["spatial", "none", "gpool", "flat"])
def test_averaging_variants_in_groups(averaging):
    """With a group size, each group m (samples m, m + M, ...) gets the Theano statistic of its own samples."""
    x = torch.randn(8, 4, 2, 2, dtype=F64)
    out = pnn.MinibatchStd(group_size=4, averaging=averaging)(x)
    for m in range(2):
        members = list(range(m, 8, 2))
        expected = theano_layer(x[members].numpy(), averaging)
        torch.testing.assert_close(out[members], torch.from_numpy(expected), rtol=1e-12, atol=1e-12)


def test_variants_differentiate_twice():
    x = torch.randn(4, 3, 2, 2, dtype=F64, requires_grad=True)
    for averaging in ("spatial", "none", "gpool", "flat"):
        layer = pnn.MinibatchStd(group_size=None, eps=1e-4, averaging=averaging)
        assert torch.autograd.gradgradcheck(layer, (x,))


@pytest.mark.parametrize("kwargs, match", [
    (dict(averaging="mean"), "averaging must be one of"),
    (dict(averaging="group0"), "averaging must be one of"),
    (dict(averaging="group2", num_channels=3), "sets num_channels=2"),
    (dict(averaging="spatial", num_channels=2), "applies to averaging 'all'"),
    (dict(group_size=0), "group_size"),
])
def test_bad_layer_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pnn.MinibatchStd(**kwargs)
