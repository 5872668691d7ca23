"""minibatch_std(..., unbiased=True): the variance divides the sum of squared deviations over a
group of G samples by G - 1 (as ``torch.std`` does) instead of G, on every backend that runs
here (reference, cpp, Triton under TRITON_INTERPRET=1), with gradients to second order.

The oracle is built directly from ``torch.std`` / ``torch.var`` in float64, not from pygan's own
reference: ``tutorial`` is the ProGAN tutorial's method verbatim,

    batch_statistics = torch.std(x, dim=0).mean().repeat(x.shape[0], 1, x.shape[2], x.shape[3])
    return torch.cat([x, batch_statistics], dim=1)

and ``torch_std_oracle`` is its generalisation to groups (sample n = g * M + m in group m),
channel groups and eps (sqrt(var + eps); with eps = 0 it calls ``torch.std`` itself). Inputs are
continuous random numbers, so no group has zero variance (eps = 0 is differentiable there).
"""

import pytest
import torch
from op_harness import (BACKEND_PARAMS, DTYPES, MEMORY_FORMATS, OPCHECK_DTYPES, assert_op_in_compiled_graph,
                        check_parity, gradcheck_fast_mode, namespace, namespace_name)

import pygan.nn as pnn
import pygan.ops as ops

F64 = torch.float64
ALL_BACKENDS = [pytest.param("reference", id="reference"), *BACKEND_PARAMS]


def tutorial(x: torch.Tensor) -> torch.Tensor:
    """The ProGAN tutorial's ``minibatch_std`` method, exactly."""
    batch_statistics = torch.std(x, dim=0).mean().repeat(x.shape[0], 1, x.shape[2], x.shape[3])
    return torch.cat([x, batch_statistics], dim=1)


def torch_std_oracle(x: torch.Tensor, group_size, num_channels: int, eps: float) -> torch.Tensor:
    """Per group m and channel group f: mean over (c in f, pixels) of torch.std over the group's
    samples (sqrt(torch.var + eps) when eps > 0), appended as F constant maps."""
    N, C, H, W = x.shape
    G = N if group_size is None else min(group_size, N)
    M, F = N // G, num_channels
    y = x.reshape(G, M, F, C // F, H, W)
    sigma = torch.std(y, dim=0) if eps == 0 else (torch.var(y, dim=0) + eps).sqrt()   # (M, F, Cf, H, W)
    stat = sigma.mean(dim=(2, 3, 4))                                                   # (M, F)
    stat = stat.reshape(1, M, F, 1, 1).expand(G, M, F, H, W).reshape(N, F, H, W)
    return torch.cat([x, stat], dim=1)


def unbiased_op(backend, group_size, num_channels, eps):
    return lambda t: ops.minibatch_std(t, group_size, num_channels, eps, unbiased=True, backend=backend)


def test_the_oracle_is_the_tutorial():
    x = torch.randn(7, 5, 3, 4, dtype=F64)
    assert torch.equal(torch_std_oracle(x, None, 1, 0.0), tutorial(x))


# (shape, group_size, num_channels): whole batch, integer groups (G = 2 divides by 1), F > 1,
# N = 2 (the smallest batch), 1x1 pixels, prime channel counts
CASES = [((6, 5, 3, 4), None, 1), ((8, 6, 4, 4), 4, 2), ((8, 6, 2, 3), 2, 3), ((2, 7, 4, 4), None, 1),
         ((9, 13, 1, 1), 3, 1), ((4, 8, 5, 5), None, 4)]


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("shape, group_size, num_channels", CASES, ids=str)
def test_forward_equals_torch_std_in_float64(backend, shape, group_size, num_channels):
    x = torch.randn(shape, dtype=F64)
    for eps in (0.0, 1e-3):
        out = ops.minibatch_std(x, group_size, num_channels, eps, unbiased=True, backend=backend)
        torch.testing.assert_close(out, torch_std_oracle(x, group_size, num_channels, eps), rtol=1e-13, atol=1e-13)
    if group_size is None and num_channels == 1:
        torch.testing.assert_close(ops.minibatch_std(x, None, 1, 0.0, unbiased=True, backend=backend), tutorial(x),
                                   rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("group_size", [None, 2, 4])
def test_unbiased_is_the_biased_statistic_times_sqrt_g_over_g_minus_1(backend, group_size):
    """With eps = 0 every sigma, hence their mean, scales by sqrt(G / (G - 1)); x passes unchanged."""
    x = torch.randn(8, 6, 3, 3, dtype=F64)
    G = 8 if group_size is None else group_size
    biased = ops.minibatch_std(x, group_size, 2, 0.0, backend=backend)
    unbiased = ops.minibatch_std(x, group_size, 2, 0.0, unbiased=True, backend=backend)
    assert torch.equal(unbiased[:, :6], x)
    torch.testing.assert_close(unbiased[:, 6:], biased[:, 6:] * (G / (G - 1)) ** 0.5, rtol=1e-13, atol=0)
    assert not torch.allclose(unbiased, biased)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("eps", [0.0, 1e-8])
@pytest.mark.parametrize("shape, group_size, num_channels", CASES[:4], ids=str)
def test_parity_with_gradients(backend, dtype, eps, shape, group_size, num_channels):
    """op_harness's rule (|a - r64| <= 2 |r_dtype - r64| + ulp + accumulation floor) for the output
    and the input gradient, in every layout (contiguous, channels_last, strided, transposed), with
    the torch.std oracle as the reference in both float64 and the tested dtype."""
    x = torch.randn(shape, dtype=F64)
    check_parity(unbiased_op(backend, group_size, num_channels, eps),
                 lambda t: torch_std_oracle(t, group_size, num_channels, eps), [x], dtype)


def first_and_second_derivatives(fn, x, v, w):
    """y = fn(x); g = (dy/dx)^T v; returns (y, g, d<g, w>/dx, d<g, w>/dv)."""
    x = x.detach().requires_grad_()
    v = v.detach().requires_grad_()
    y = fn(x)
    (g,) = torch.autograd.grad(y, x, v, create_graph=True)
    ddx, ddv = torch.autograd.grad((g * w).sum(), (x, v))
    return y.detach(), g.detach(), ddx, ddv


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("memory_format", MEMORY_FORMATS)
@pytest.mark.parametrize("eps", [0.0, 1e-3])
@pytest.mark.parametrize("shape, group_size, num_channels", [((6, 4, 3, 2), None, 1), ((8, 6, 2, 3), 4, 3),
                                                              ((4, 4, 2, 2), 2, 2)], ids=str)
def test_backward_and_double_backward_equal_torch_std(backend, memory_format, eps, shape, group_size, num_channels):
    """Forward, backward (gradient for a random cotangent v) and double backward (derivatives
    of <g, w> in x and in v: the `_bwd` op's own autograd) against autograd through torch.std."""
    x = torch.randn(shape, dtype=F64).contiguous(memory_format=memory_format)
    N, C, H, W = shape
    v = torch.randn(N, C + num_channels, H, W, dtype=F64)
    w = torch.randn(shape, dtype=F64)
    got = first_and_second_derivatives(unbiased_op(backend, group_size, num_channels, eps), x, v, w)
    want = first_and_second_derivatives(lambda t: torch_std_oracle(t, group_size, num_channels, eps), x, v, w)
    for name, a, b in zip(("output", "gradient", "d/dx of <g, w>", "d/dv of <g, w>"), got, want):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-11, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("memory_format", MEMORY_FORMATS)
@pytest.mark.parametrize("eps", [0.0, 1e-3])
@pytest.mark.parametrize("group_size, num_channels", [(None, 1), (2, 2)])
def test_gradcheck_and_gradgradcheck(backend, memory_format, eps, group_size, num_channels):
    # small (32 elements): the Triton interpreter runs gradgradcheck's many launches slowly
    x = torch.randn(4, 2, 2, 2, dtype=F64).contiguous(memory_format=memory_format).requires_grad_()
    fn = unbiased_op(backend, group_size, num_channels, eps)
    fast = gradcheck_fast_mode(backend)
    assert torch.autograd.gradcheck(fn, (x,), fast_mode=fast)
    assert torch.autograd.gradgradcheck(fn, (x,), fast_mode=fast)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("dtype", OPCHECK_DTYPES, ids=str)
def test_opcheck(backend, dtype):
    ns = namespace(backend)
    x = torch.randn(8, 6, 4, 5, dtype=dtype, requires_grad=True)
    g = torch.randn(8, 9, 4, 5, dtype=dtype, requires_grad=True)
    torch.library.opcheck(ns.minibatch_std.default, (x, 4, 3, 0.0, True))
    torch.library.opcheck(ns.minibatch_std_bwd.default, (g, x, 4, 3, 0.0, True))
    torch.library.opcheck(ns.minibatch_std.default, (x, 8, 1, 1e-8, True))
    torch.library.opcheck(ns.minibatch_std_bwd.default, (g[:, :7], x, 2, 1, 1e-8, True))
    xc = x.detach().to(memory_format=torch.channels_last)
    torch.library.opcheck(ns.minibatch_std.default, (xc, 2, 1, 0.0, True))


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_ops_default_to_the_biased_variance(backend):
    """The trailing ``bool unbiased=False`` of both schemas: callers that omit it keep the old maths."""
    ns = namespace(backend)
    x = torch.randn(4, 3, 2, 2, dtype=F64)
    g = torch.randn(4, 4, 2, 2, dtype=F64)
    assert torch.equal(ns.minibatch_std(x, 4, 1, 1e-8), ns.minibatch_std(x, 4, 1, 1e-8, False))
    assert torch.equal(ns.minibatch_std_bwd(g, x, 4, 1, 1e-8), ns.minibatch_std_bwd(g, x, 4, 1, 1e-8, False))
    assert not torch.allclose(ns.minibatch_std(x, 4, 1, 1e-8), ns.minibatch_std(x, 4, 1, 1e-8, True))
    assert not torch.allclose(ns.minibatch_std_bwd(g, x, 4, 1, 1e-8), ns.minibatch_std_bwd(g, x, 4, 1, 1e-8, True))


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("memory_format", MEMORY_FORMATS)
@pytest.mark.parametrize("group_size, num_channels", [(None, 1), (4, 2)])
def test_compile_runs_the_op(backend, memory_format, group_size, num_channels):
    """torch.compile(fullgraph=True): the backend's minibatch_std and minibatch_std_bwd are in the
    compiled graphs, and output and gradient equal the torch.std oracle (the biased variance
    would differ by sqrt(G / (G - 1)))."""
    x = torch.randn(8, 6, 4, 4, dtype=F64).contiguous(memory_format=memory_format).requires_grad_()
    y, (gx,) = assert_op_in_compiled_graph(unbiased_op(backend, group_size, num_channels, 0.0), (x,),
                                           namespace_name(backend), "minibatch_std")
    ye = torch_std_oracle(x, group_size, num_channels, 0.0)
    (gxe,) = torch.autograd.grad(ye.square().sum(), x)
    torch.testing.assert_close(y, ye)
    torch.testing.assert_close(gx, gxe)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("shape, group_size", [((1, 3, 4, 4), None), ((1, 3, 4, 4), 4), ((4, 3, 2, 2), 1)],
                         ids=str)
def test_a_group_of_one_sample_is_an_error(backend, shape, group_size):
    x = torch.randn(shape)
    with pytest.raises(ValueError, match=r"unbiased=True needs at least 2 samples per group, got a group size "
                                         r"of G=1"):
        ops.minibatch_std(x, group_size, unbiased=True, backend=backend)
    # the biased variance of one sample is 0: still allowed
    assert ops.minibatch_std(x, group_size, backend=backend).shape == (shape[0], 4, *shape[2:])


def test_the_reference_rejects_a_group_of_one_sample():
    with pytest.raises(ValueError, match=r"unbiased=True .* G=1"):
        ops.minibatch_std_reference(torch.randn(1, 3, 2, 2), None, unbiased=True)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_the_compiled_ops_reject_a_group_of_one_sample(backend):
    """Called directly, past the Python wrapper's checks."""
    ns = namespace(backend)
    x = torch.randn(3, 2, 2, 2)
    with pytest.raises(ValueError, match=r"unbiased=True needs group_size >= 2, got group_size=1"):
        ns.minibatch_std(x, 1, 1, 0.0, True)
    with pytest.raises(ValueError, match=r"unbiased=True needs group_size >= 2, got group_size=1"):
        ns.minibatch_std_bwd(torch.randn(3, 3, 2, 2), x, 1, 1, 0.0, True)


@pytest.mark.parametrize("value", [1, 0, "True", None, torch.tensor(True)], ids=repr)
def test_unbiased_must_be_a_bool(value):
    with pytest.raises(TypeError, match=r"unbiased must be a bool \(True or False\), got "):
        ops.minibatch_std(torch.randn(4, 3, 2, 2), unbiased=value)
    with pytest.raises(TypeError, match=r"unbiased must be a bool"):
        pnn.MinibatchStd(unbiased=value)


# --- the layer ---------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_layer_is_the_tutorial_method(backend):
    layer = pnn.MinibatchStd(group_size=None, eps=0.0, unbiased=True)
    x = torch.randn(6, 5, 4, 4, dtype=F64, requires_grad=True)
    with ops.use_backend(backend):
        y = layer(x)
        (g,) = torch.autograd.grad(y.square().sum(), x)
    ye = tutorial(x)
    (ge,) = torch.autograd.grad(ye.square().sum(), x)
    torch.testing.assert_close(y, ye, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(g, ge, rtol=1e-12, atol=1e-12)
    assert "unbiased=True" in repr(layer)


def test_layer_defaults_and_state_dict_are_unchanged():
    layer = pnn.MinibatchStd()
    assert layer.unbiased is False and "unbiased" not in repr(layer)
    assert dict(layer.state_dict()) == {} and dict(pnn.MinibatchStd(unbiased=True).state_dict()) == {}
    x = torch.randn(8, 3, 2, 2, dtype=F64)
    assert torch.equal(layer(x), ops.minibatch_std(x, 4, 1, 1e-8))


def test_layer_unbiased_applies_to_averaging_all_only():
    with pytest.raises(ValueError, match=r"unbiased=True applies to averaging 'all' / group<N> only"):
        pnn.MinibatchStd(averaging="spatial", unbiased=True)
    x = torch.randn(4, 6, 2, 2, dtype=F64)
    torch.testing.assert_close(pnn.MinibatchStd(None, averaging="group3", eps=0.0, unbiased=True)(x),
                               torch_std_oracle(x, None, 3, 0.0), rtol=1e-13, atol=1e-13)
