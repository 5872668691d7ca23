"""minibatch_std on every backend that runs here, against the reference."""

import pytest
import torch
from op_harness import (BACKEND_PARAMS, DTYPES, MEMORY_FORMATS, OPCHECK_DTYPES, assert_op_in_compiled_graph,
                        check_parity, gradcheck_fast_mode, namespace, namespace_name)

import pygan.ops as ops

# (shape, group_size, num_channels)
CASES = [((1, 1, 1, 1), 4, 1), ((1, 7, 4, 4), 4, 1), ((4, 3, 4, 4), 4, 1), ((8, 13, 4, 4), 4, 1),
         ((6, 8, 5, 3), 2, 4), ((6, 8, 2, 2), None, 2), ((16, 32, 8, 8), 4, 1), ((3, 5, 1, 1), 3, 5)]


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape, group_size, num_channels", CASES, ids=str)
def test_parity(backend, dtype, shape, group_size, num_channels):
    x = torch.randn(shape, dtype=torch.float64)
    check_parity(lambda t: ops.minibatch_std(t, group_size, num_channels, backend=backend),
                 lambda t: ops.minibatch_std_reference(t, group_size, num_channels), [x], dtype)


def test_matches_the_definition_by_hand():
    """Two groups of two samples (n = g * M + m, group m = n mod 2), one channel, 1x2 pixels."""
    x = torch.tensor([[[[0.0, 1.0]]], [[[2.0, 5.0]]], [[[4.0, 1.0]]], [[[6.0, 5.0]]]])
    out = ops.minibatch_std(x, group_size=2, eps=0.0)
    # group 0 = samples 0, 2: stds per pixel |0-4|/2=2, |1-1|/2=0 -> mean 1
    # group 1 = samples 1, 3: stds 2, 0 -> mean 1
    expected = torch.cat([x, torch.ones(4, 1, 1, 2)], dim=1)
    torch.testing.assert_close(out, expected)
    x[2, 0, 0, 1] = 3.0   # group 0 now has stds 2 and 1 -> 1.5
    torch.testing.assert_close(ops.minibatch_std(x, group_size=2, eps=0.0)[[0, 2], 1],
                               torch.full((2, 1, 2), 1.5))


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last], ids=str)
@pytest.mark.parametrize("group_size, num_channels", [(2, 1), (4, 3), (None, 1)])
def test_gradcheck_and_gradgradcheck(backend, memory_format, group_size, num_channels):
    x = torch.randn(4, 6, 3, 2, dtype=torch.float64).contiguous(memory_format=memory_format)
    x.requires_grad_()
    fn = lambda t: ops.minibatch_std(t, group_size, num_channels, 1e-4, backend=backend)  # noqa: E731
    fast = gradcheck_fast_mode(backend)
    assert torch.autograd.gradcheck(fn, (x,), fast_mode=fast)
    assert torch.autograd.gradgradcheck(fn, (x,), fast_mode=fast)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_batch_of_one_is_finite(backend):
    x = torch.randn(1, 5, 4, 4, dtype=torch.float64, requires_grad=True)
    y = ops.minibatch_std(x, backend=backend)
    (g,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    (gg,) = torch.autograd.grad(g.sum(), x)
    assert torch.isfinite(y).all() and torch.isfinite(g).all() and torch.isfinite(gg).all()
    # a group of one sample: every deviation from the group mean is 0, so the statistic is
    # sqrt(0 + eps) = 1e-4 and does not depend on x: dy/dx is the identity part alone (all ones)
    # and the second derivative is 0
    torch.testing.assert_close(y[:, 5], torch.full((1, 4, 4), 1e-4, dtype=torch.float64))
    assert torch.equal(y[:, :5], x)
    assert torch.equal(g, torch.ones_like(x)) and torch.equal(gg, torch.zeros_like(x))


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("dtype", OPCHECK_DTYPES, ids=str)
def test_opcheck(backend, dtype):
    ns = namespace(backend)
    x = torch.randn(8, 6, 4, 5, dtype=dtype, requires_grad=True)
    g = torch.randn(8, 9, 4, 5, dtype=dtype, requires_grad=True)
    torch.library.opcheck(ns.minibatch_std.default, (x, 4, 3, 1e-8))
    torch.library.opcheck(ns.minibatch_std_bwd.default, (g, x, 4, 3, 1e-8))
    xc = x.detach().to(memory_format=torch.channels_last)
    torch.library.opcheck(ns.minibatch_std.default, (xc, 2, 1, 1e-8))


def test_compile_fullgraph_forward_backward():
    x = torch.randn(8, 6, 4, 4, requires_grad=True)
    compiled = torch.compile(lambda t: ops.minibatch_std(t, backend="cpp"), fullgraph=True)
    y = compiled(x)
    (gx,) = torch.autograd.grad(y.square().sum(), x)
    ye = ops.minibatch_std_reference(x)
    (gxe,) = torch.autograd.grad(ye.square().sum(), x)
    torch.testing.assert_close(y, ye)
    torch.testing.assert_close(gx, gxe)


@pytest.mark.parametrize("bad, error, match", [
    (dict(x=torch.randn(6, 4, 4, 4)), ValueError, r"N=6 is not divisible by the group size G=.*4"),
    (dict(num_channels=3), ValueError, r"C=4 is not divisible by num_channels=3"),
    (dict(x=torch.randn(0, 4, 4, 4)), ValueError, r"x has no samples \(shape \(0, 4, 4, 4\)\)"),
    (dict(x=torch.randn(0, 4, 4, 4), group_size=None), ValueError, "N must be >= 1"),
    (dict(x=torch.randn(4, 4, 4)), ValueError, r"x must be a 4-d tensor \(N, C, H, W\)"),
    (dict(group_size=0), ValueError, "group_size must be >= 1"),
    (dict(group_size=2.0), TypeError, "group_size must be an int"),
    (dict(x=torch.ones(4, 4, 2, 2, dtype=torch.int64)), TypeError, "x must be float16.*int64"),
])
def test_bad_input(bad, error, match):
    kw = dict(x=torch.randn(4, 4, 4, 4), group_size=4, num_channels=1)
    kw.update(bad)
    with pytest.raises(error, match=match):
        ops.minibatch_std(kw["x"], kw["group_size"], kw["num_channels"])


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("memory_format", MEMORY_FORMATS)
def test_compile_runs_the_op(backend, memory_format):
    """torch.compile(fullgraph=True): minibatch_std and minibatch_std_bwd of the backend are in
    the compiled forward and backward graphs (not a fallback), and the results match the reference."""
    x = torch.randn(8, 6, 4, 4, dtype=torch.float64).contiguous(memory_format=memory_format).requires_grad_()
    y, (gx,) = assert_op_in_compiled_graph(lambda t: ops.minibatch_std(t, 4, 2, backend=backend), (x,),
                                           namespace_name(backend), "minibatch_std")
    ye = ops.minibatch_std_reference(x, 4, 2)
    (gxe,) = torch.autograd.grad(ye.square().sum(), x)
    torch.testing.assert_close(y, ye)
    torch.testing.assert_close(gx, gxe)
