"""pixel_norm on every backend that runs here, against the reference."""

import pytest
import torch
from op_harness import BACKEND_PARAMS, DTYPES, check_parity, namespace

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
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_opcheck(backend):
    ns = namespace(backend)
    x = torch.randn(3, 6, 4, 5, dtype=torch.float64, requires_grad=True)
    g = torch.randn(3, 6, 4, 5, dtype=torch.float64, requires_grad=True)
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


def test_eps_keeps_zero_input_finite():
    x = torch.zeros(2, 4, 3, 3, requires_grad=True)
    y = ops.pixel_norm(x)
    y.sum().backward()
    assert torch.equal(y, torch.zeros_like(y)) and torch.isfinite(x.grad).all()


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
