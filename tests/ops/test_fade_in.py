"""fade_in on every backend that runs here, against the reference."""

import pytest
import torch
from op_harness import (BACKEND_PARAMS, DTYPES, MEMORY_FORMATS, OPCHECK_DTYPES, assert_op_in_compiled_graph,
                        check_parity, fade_in_parity_params, gradcheck_fast_mode, namespace, namespace_name)

import pygan.ops as ops

# (low shape, high shape), then the multi-tile pair
CASES = [((1, 1, 1, 1), (1, 1, 2, 2)), ((2, 3, 4, 4), (2, 3, 8, 8)), ((1, 7, 3, 5), (1, 7, 6, 10)),
         ((2, 3, 4, 4), (2, 3, 4, 4)), ((1, 1, 1, 1), (1, 1, 1, 1))]
LARGE_CASES = [((4, 16, 16, 16), (4, 16, 32, 32))]


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("low_shape, high_shape, alpha", fade_in_parity_params(CASES, LARGE_CASES))
def test_parity(backend, dtype, low_shape, high_shape, alpha):
    low = torch.randn(low_shape, dtype=torch.float64)
    high = torch.randn(high_shape, dtype=torch.float64)
    # layout variants apply to high; low follows in a second pass with the arguments swapped
    check_parity(lambda h, lo: ops.fade_in(lo, h, alpha, backend=backend),
                 lambda h, lo: ops.fade_in_reference(lo, h, alpha), [high, low], dtype)
    check_parity(lambda lo, h: ops.fade_in(lo, h, alpha, backend=backend),
                 lambda lo, h: ops.fade_in_reference(lo, h, alpha), [low, high], dtype)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last], ids=str)
@pytest.mark.parametrize("upsample", [True, False])
def test_gradcheck_and_gradgradcheck(backend, memory_format, upsample):
    high = torch.randn(2, 3, 4, 6, dtype=torch.float64).contiguous(memory_format=memory_format)
    low = torch.randn(2, 3, 2, 3, dtype=torch.float64) if upsample else torch.randn(2, 3, 4, 6, dtype=torch.float64)
    low = low.contiguous(memory_format=memory_format).requires_grad_()
    high.requires_grad_()
    alpha = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    fast = gradcheck_fast_mode(backend)
    fn = lambda lo, h, a: ops.fade_in(lo, h, a, backend=backend)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (low, high, alpha), fast_mode=fast)
    assert torch.autograd.gradgradcheck(fn, (low, high, alpha), fast_mode=fast)
    fn_float = lambda lo, h: ops.fade_in(lo, h, 0.7, backend=backend)  # noqa: E731
    assert torch.autograd.gradgradcheck(fn_float, (low, high), fast_mode=fast)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("dtype", OPCHECK_DTYPES, ids=str)
def test_opcheck(backend, dtype):
    ns = namespace(backend)
    low = torch.randn(2, 3, 4, 5, dtype=dtype, requires_grad=True)
    high = torch.randn(2, 3, 8, 10, dtype=dtype, requires_grad=True)
    alpha = torch.tensor(0.25, dtype=dtype)
    g = torch.randn(2, 3, 8, 10, dtype=dtype, requires_grad=True)
    torch.library.opcheck(ns.fade_in.default, (low, high, alpha))
    torch.library.opcheck(ns.fade_in.default, (high, high.detach().clone(), alpha))
    torch.library.opcheck(ns.fade_in_bwd.default, (g, alpha, True))
    torch.library.opcheck(ns.fade_in_bwd.default, (g, alpha, False))
    cl = lambda t: t.detach().to(memory_format=torch.channels_last)  # noqa: E731
    torch.library.opcheck(ns.fade_in.default, (cl(low), cl(high), alpha))
    torch.library.opcheck(ns.fade_in_bwd.default, (cl(g), alpha, True))


def test_compile_fullgraph_forward_backward():
    low = torch.randn(2, 4, 4, 4, requires_grad=True)
    high = torch.randn(2, 4, 8, 8, requires_grad=True)
    compiled = torch.compile(lambda lo, h: ops.fade_in(lo, h, 0.25, backend="cpp"), fullgraph=True)
    y = compiled(low, high)
    grads = torch.autograd.grad(y.square().sum(), (low, high))
    ye = ops.fade_in_reference(low, high, 0.25)
    grads_e = torch.autograd.grad(ye.square().sum(), (low, high))
    torch.testing.assert_close(y, ye)
    for g, ge in zip(grads, grads_e):
        torch.testing.assert_close(g, ge)


def test_alpha_tensor_matches_float():
    low, high = torch.randn(2, 3, 2, 2), torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(ops.fade_in(low, high, torch.tensor(0.4)), ops.fade_in(low, high, 0.4))


@pytest.mark.parametrize("bad, error, match", [
    (dict(alpha=1.5), ValueError, r"alpha must be <= 1.0, got 1.5"),
    (dict(alpha=-0.1), ValueError, r"alpha must be >= 0.0"),
    (dict(alpha=torch.tensor(2.0)), ValueError, r"alpha must be in \[0, 1\], got 2.0"),
    (dict(alpha=torch.tensor([0.5])), ValueError, "alpha must be a float or a 0-dim tensor"),
    (dict(low=torch.randn(2, 3, 3, 3)), ValueError, r"low must have the shape of high .* or half"),
    (dict(low=torch.randn(2, 4, 2, 2)), ValueError, r"low must have the shape of high"),
    (dict(low=torch.randn(2, 3, 2, 2, dtype=torch.float64)), TypeError, "low has dtype torch.float64"),
    (dict(low=torch.randn(2, 3, 2, 2, device="meta")), ValueError, "low is on meta but high is on cpu"),
    (dict(high=torch.randn(3, 4, 4)), ValueError, r"high must be a 4-d tensor"),
    (dict(high=torch.ones(2, 3, 4, 4, dtype=torch.int64)), TypeError, "high must be float16.*int64"),
])
def test_bad_input(bad, error, match):
    kw = dict(low=torch.randn(2, 3, 2, 2), high=torch.randn(2, 3, 4, 4), alpha=0.5)
    kw.update(bad)
    with pytest.raises(error, match=match):
        ops.fade_in(kw["low"], kw["high"], kw["alpha"])


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("memory_format", MEMORY_FORMATS)
def test_compile_runs_the_op(backend, memory_format):
    """torch.compile(fullgraph=True): fade_in and fade_in_bwd of the backend are in the compiled
    forward and backward graphs (not a fallback), and the results match the reference."""
    cf = dict(memory_format=memory_format)
    low = torch.randn(2, 3, 4, 5, dtype=torch.float64).contiguous(**cf).requires_grad_()
    high = torch.randn(2, 3, 8, 10, dtype=torch.float64).contiguous(**cf).requires_grad_()
    y, grads = assert_op_in_compiled_graph(lambda lo, h: ops.fade_in(lo, h, 0.3, backend=backend), (low, high),
                                           namespace_name(backend), "fade_in")
    ye = ops.fade_in_reference(low, high, 0.3)
    grads_e = torch.autograd.grad(ye.square().sum(), (low, high))
    torch.testing.assert_close(y, ye)
    for g, ge in zip(grads, grads_e):
        torch.testing.assert_close(g, ge)
