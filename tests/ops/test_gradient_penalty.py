"""gradient_penalty on every backend that runs here, against the reference."""

import pytest
import torch
from op_harness import (BACKEND_PARAMS, DTYPES, MEMORY_FORMATS, OPCHECK_DTYPES, assert_op_in_compiled_graph,
                        assert_parity, check_parity, gradcheck_fast_mode, namespace, namespace_name)

import pygan.ops as ops

# (3, 1, 130, 130) and (2, 3, 100, 100): rows of 16,900 and 30,000 terms, past the C++ kernel's
# row chunk of 2^14 (two partial sums per row, the second short)
SHAPES = [(1,), (5,), (1, 1), (3, 7), (1, 3, 4, 4), (4, 3, 8, 8), (2, 17, 5, 7), (3, 1, 130, 130),
          (2, 3, 100, 100)]


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("target", [1.0, 0.0])
def test_parity(backend, dtype, shape, target):
    g = torch.randn(shape, dtype=torch.float64)
    check_parity(lambda t: ops.gradient_penalty(t, target, backend=backend),
                 lambda t: ops.gradient_penalty_reference(t, target), [g], dtype,
                 reduction=g[0].numel() * g.shape[0])


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("target", [1.0, 0.0])
def test_parity_per_sample(backend, dtype, shape, target):
    """gradient_penalty judged per sample: each sample's norm (the op's second output, in the
    accumulation dtype) and penalty (norm - target)^2 against the reference's, by the parity rule
    (a loss that is only a mean over samples could hide one wrong sample)."""
    g = torch.randn(shape, dtype=torch.float64).to(dtype)
    rows = g.reshape(g.shape[0], -1)
    norms64 = torch.linalg.vector_norm(rows.double(), dim=1)
    norms_in_dtype = torch.linalg.vector_norm(rows, dim=1)
    loss, norms = namespace(backend).gradient_penalty(g, target)
    assert norms.shape == (g.shape[0],) and norms.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    assert_parity(norms.to(dtype), norms_in_dtype, norms64, "per-sample norms", reduction=rows.shape[1])
    assert_parity((norms - target).square().to(dtype), (norms_in_dtype - target).square(), (norms64 - target).square(),
                  "per-sample penalties", reduction=rows.shape[1])
    assert_parity(loss, ops.gradient_penalty_reference(g, target), ops.gradient_penalty_reference(g.double(), target),
                  "loss", reduction=rows.numel())


def test_value_by_hand():
    g = torch.tensor([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]])   # norms 5, 0, 1
    assert ops.gradient_penalty(g).item() == pytest.approx(((5 - 1) ** 2 + 1 + 0) / 3)
    assert ops.gradient_penalty(g, target=0.0).item() == pytest.approx((25 + 0 + 1) / 3)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("target", [1.0, 0.0])
def test_zero_gradient_is_finite(backend, target):
    g = torch.zeros(4, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    loss = ops.gradient_penalty(g, target, backend=backend)
    (d,) = torch.autograd.grad(loss, g)
    assert loss.item() == target ** 2
    assert torch.isfinite(d).all() and torch.equal(d, torch.zeros_like(d))


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last], ids=str)
def test_gradcheck(backend, memory_format):
    g = torch.randn(3, 4, 3, 2, dtype=torch.float64).contiguous(memory_format=memory_format)
    g.requires_grad_()
    fast = gradcheck_fast_mode(backend)
    assert torch.autograd.gradcheck(lambda t: ops.gradient_penalty(t, backend=backend), (g,), fast_mode=fast)
    assert torch.autograd.gradcheck(lambda t: ops.gradient_penalty(t[:, :, ::2], 0.0, backend=backend), (g,),
                                    fast_mode=fast)
    # the op itself, through both outputs (the per-sample norms too, which only internal code uses)
    assert torch.autograd.gradcheck(lambda t: namespace(backend).gradient_penalty(t, 1.0), (g,), fast_mode=fast)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_second_order_raises_clearly(backend):
    g = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    (d,) = torch.autograd.grad(ops.gradient_penalty(g, backend=backend), g, create_graph=True)
    with pytest.raises(RuntimeError, match="supports first-order gradients only"):
        d.sum().backward()


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("dtype", OPCHECK_DTYPES, ids=str)
def test_opcheck(backend, dtype):
    ns = namespace(backend)
    g = torch.randn(4, 3, 5, 5, dtype=dtype, requires_grad=True)
    torch.library.opcheck(ns.gradient_penalty.default, (g, 1.0))
    torch.library.opcheck(ns.gradient_penalty.default, (g.detach().to(memory_format=torch.channels_last), 0.0))
    loss, norms = ns.gradient_penalty(g.detach(), 1.0)
    # the _bwd op refuses a second derivative by design, so its autograd sub-test is left out
    torch.library.opcheck(ns.gradient_penalty_bwd.default, (torch.tensor(1.0, dtype=dtype), g.detach(), norms, 1.0),
                          test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_dynamic"))


def test_compile_fullgraph_forward_backward():
    g = torch.randn(4, 3, 8, 8, requires_grad=True)
    compiled = torch.compile(lambda t: ops.gradient_penalty(t, backend="cpp"), fullgraph=True)
    loss = compiled(g)
    (d,) = torch.autograd.grad(loss, g)
    loss_e = ops.gradient_penalty_reference(g)
    (d_e,) = torch.autograd.grad(loss_e, g)
    torch.testing.assert_close(loss, loss_e)
    torch.testing.assert_close(d, d_e)


@pytest.mark.parametrize("bad, error, match", [
    (lambda: ops.gradient_penalty(torch.randn(0, 3)), ValueError, "at least one sample"),
    (lambda: ops.gradient_penalty(torch.tensor(1.0)), ValueError, "grad must have at least 1 dimensions"),
    (lambda: ops.gradient_penalty(torch.ones(2, 3, dtype=torch.int32)), TypeError, "grad must be float16.*int32"),
    (lambda: ops.gradient_penalty(torch.randn(2, 3), target=-1.0), ValueError, "target must be >= 0"),
])
def test_bad_input(bad, error, match):
    with pytest.raises(error, match=match):
        bad()


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("memory_format", MEMORY_FORMATS)
def test_compile_runs_the_op(backend, memory_format):
    """torch.compile(fullgraph=True): gradient_penalty and gradient_penalty_bwd of the backend
    are in the compiled forward and backward graphs (not a fallback), and match the reference."""
    g = torch.randn(4, 3, 8, 8, dtype=torch.float64).contiguous(memory_format=memory_format).requires_grad_()
    loss, (d,) = assert_op_in_compiled_graph(lambda t: ops.gradient_penalty(t, backend=backend), (g,),
                                             namespace_name(backend), "gradient_penalty", loss=lambda out: out)
    loss_e = ops.gradient_penalty_reference(g)
    (d_e,) = torch.autograd.grad(loss_e, g)
    torch.testing.assert_close(loss, loss_e)
    torch.testing.assert_close(d, d_e)
