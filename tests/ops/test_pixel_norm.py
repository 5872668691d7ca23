"""pixel_norm on every backend that runs here, against the reference."""

import pytest
import torch
from op_harness import (BACKEND_PARAMS, DTYPES, MEMORY_FORMATS, OPCHECK_DTYPES, assert_op_in_compiled_graph,
                        check_parity, gradcheck_fast_mode, namespace, namespace_name)

import pygan.ops as ops

SHAPES = [(1, 1), (3, 7), (1, 1, 1, 1), (2, 13, 1, 1), (2, 3, 4, 4), (1, 17, 5, 7),
          (4, 64, 8, 8), (2, 5, 3, 4, 6), (2, 31, 67)]


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_parity(backend, dtype, shape):
    x = torch.randn(shape, dtype=torch.float64)
    check_parity(lambda t: ops.pixel_norm(t, backend=backend), ops.pixel_norm_reference, [x], dtype)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last], ids=str)
def test_gradcheck_and_gradgradcheck(backend, memory_format):
    x = torch.randn(2, 5, 3, 4, dtype=torch.float64).contiguous(memory_format=memory_format)
    x.requires_grad_()
    fn = lambda t: ops.pixel_norm(t, 1e-3, backend=backend)  # noqa: E731
    fast = gradcheck_fast_mode(backend)
    assert torch.autograd.gradcheck(fn, (x,), fast_mode=fast)
    assert torch.autograd.gradgradcheck(fn, (x,), fast_mode=fast)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("dtype", OPCHECK_DTYPES, ids=str)
def test_opcheck(backend, dtype):
    ns = namespace(backend)
    x = torch.randn(3, 6, 4, 5, dtype=dtype, requires_grad=True)
    g = torch.randn(3, 6, 4, 5, dtype=dtype, requires_grad=True)
    torch.library.opcheck(ns.pixel_norm.default, (x, 1e-8))
    torch.library.opcheck(ns.pixel_norm_bwd.default, (g, x, 1e-8))
    torch.library.opcheck(ns.pixel_norm.default, (x.detach().to(memory_format=torch.channels_last), 1e-8))


def test_compile_fullgraph_forward_backward():
    x = torch.randn(4, 8, 6, 6, requires_grad=True)
    compiled = torch.compile(lambda t: ops.pixel_norm(t, backend="cpp"), fullgraph=True)
    y = compiled(x)
    (gx,) = torch.autograd.grad(y.square().sum(), x)
    ye = ops.pixel_norm_reference(x)
    (gxe,) = torch.autograd.grad(ye.square().sum(), x)
    torch.testing.assert_close(y, ye)
    torch.testing.assert_close(gx, gxe)


@pytest.mark.parametrize("backend", [pytest.param("reference", id="reference"), *BACKEND_PARAMS])
@pytest.mark.parametrize("eps", [1e-8, 0.25])
def test_zero_input_exact_values(backend, eps):
    """At x = 0: y = 0, and dx = r * (g - y * mean(g * y)) = g / sqrt(eps) exactly (so eps keeps
    it finite); the second derivative of <y, g> is 0 there (every term has a factor x or y)."""
    x = torch.zeros(2, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 4, 3, 3, dtype=torch.float64)
    y = ops.pixel_norm(x, eps, backend=backend)
    (dx,) = torch.autograd.grad(y, x, g, create_graph=True)
    (ddx,) = torch.autograd.grad(dx, x, torch.ones_like(dx))
    assert torch.equal(y.detach(), torch.zeros_like(x))
    torch.testing.assert_close(dx.detach(), g / eps ** 0.5, rtol=1e-15, atol=0)
    assert torch.equal(ddx, torch.zeros_like(x))


@pytest.mark.parametrize("bad, error, match", [
    (lambda: ops.pixel_norm(torch.randn(5)), ValueError, r"x must have at least 2 dimensions.*\(5,\)"),
    (lambda: ops.pixel_norm(torch.ones(2, 3, dtype=torch.int64)), TypeError, "x must be float16.*int64"),
    (lambda: ops.pixel_norm([1.0, 2.0]), TypeError, "x must be a torch.Tensor, got list"),
    (lambda: ops.pixel_norm(torch.randn(2, 3), eps=-1.0), ValueError, "eps must be >= 0"),
    (lambda: ops.pixel_norm(torch.randn(2, 3), backend="nope"), ValueError, "backend must be one of"),
])
def test_bad_input(bad, error, match):
    with pytest.raises(error, match=match):
        bad()


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("memory_format", MEMORY_FORMATS)
def test_compile_runs_the_op(backend, memory_format):
    """torch.compile(fullgraph=True): pixel_norm and pixel_norm_bwd of the backend are in the
    compiled forward and backward graphs (not a fallback), and the results match the reference."""
    x = torch.randn(4, 8, 6, 6, dtype=torch.float64).contiguous(memory_format=memory_format).requires_grad_()
    y, (gx,) = assert_op_in_compiled_graph(lambda t: ops.pixel_norm(t, backend=backend), (x,),
                                           namespace_name(backend), "pixel_norm")
    ye = ops.pixel_norm_reference(x)
    (gxe,) = torch.autograd.grad(ye.square().sum(), x)
    torch.testing.assert_close(y, ye)
    torch.testing.assert_close(gx, gxe)
