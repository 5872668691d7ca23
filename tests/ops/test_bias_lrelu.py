"""bias_lrelu and bias_lrelu_pixel_norm on every backend that runs here, against the reference."""

import math

import pytest
import torch
from op_harness import (BACKEND_PARAMS, DTYPES, MEMORY_FORMATS, OPCHECK_DTYPES, assert_op_in_compiled_graph,
                        check_parity, gradcheck_fast_mode, namespace, namespace_name)

import pygan.ops as ops

SHAPES = [(1, 1), (3, 7), (1, 1, 1, 1), (2, 13, 1, 1), (2, 3, 4, 4), (1, 17, 5, 7),
          (4, 64, 8, 8), (2, 5, 3, 4, 6)]
SETTINGS = [dict(), dict(scale=0.37, negative_slope=0.2, gain=math.sqrt(2)),
            dict(scale=1.0, negative_slope=0.0, gain=1.0)]
FUSED = {
    "bias_lrelu": (ops.bias_lrelu, ops.bias_lrelu_reference),
    "bias_lrelu_pixel_norm": (ops.bias_lrelu_pixel_norm, ops.bias_lrelu_pixel_norm_reference),
}


@pytest.mark.parametrize("op", FUSED)
@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "nobias"])
def test_parity(op, backend, dtype, shape, with_bias):
    fn, ref = FUSED[op]
    kw = SETTINGS[1]
    x = torch.randn(shape, dtype=torch.float64)
    if with_bias:
        b = torch.randn(shape[1], dtype=torch.float64)
        check_parity(lambda t, bb: fn(t, bb, backend=backend, **kw), lambda t, bb: ref(t, bb, **kw),
                     [x, b], dtype)
    else:
        check_parity(lambda t: fn(t, backend=backend, **kw), lambda t: ref(t, **kw), [x], dtype)


@pytest.mark.parametrize("op", FUSED)
@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("settings", SETTINGS, ids=["default", "elr", "relu"])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last], ids=str)
def test_gradcheck_and_gradgradcheck(op, backend, settings, memory_format):
    fn, _ = FUSED[op]
    # keep |x * scale + b| away from 0, where leaky ReLU has its kink
    x = torch.randn(2, 5, 3, 4, dtype=torch.float64)
    x = (x + 0.2 * x.sign()).contiguous(memory_format=memory_format).requires_grad_()
    b = (0.1 * torch.randn(5, dtype=torch.float64)).requires_grad_()
    f = lambda t, bb: fn(t, bb, backend=backend, **settings)  # noqa: E731
    fast = gradcheck_fast_mode(backend)
    assert torch.autograd.gradcheck(f, (x, b), fast_mode=fast)
    assert torch.autograd.gradgradcheck(f, (x, b), fast_mode=fast)
    assert torch.autograd.gradgradcheck(lambda t: fn(t, backend=backend, **settings), (x,), fast_mode=fast)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("dtype", OPCHECK_DTYPES, ids=str)
def test_opcheck(backend, dtype):
    ns = namespace(backend)
    x = torch.randn(3, 6, 4, 5, dtype=dtype, requires_grad=True)
    b = torch.randn(6, dtype=dtype, requires_grad=True)
    g = torch.randn(3, 6, 4, 5, dtype=dtype, requires_grad=True)
    out = ns.bias_lrelu(x, b, 0.5, 0.2, 1.4).detach()
    torch.library.opcheck(ns.bias_lrelu.default, (x, b, 0.5, 0.2, 1.4))
    torch.library.opcheck(ns.bias_lrelu.default, (x, None, 0.5, 0.2, 1.4))
    torch.library.opcheck(ns.bias_lrelu_bwd.default, (g, out, 0.5, 0.2, 1.4, True))
    torch.library.opcheck(ns.bias_lrelu_bwd.default, (g, out, 0.5, 0.2, 1.4, False))
    torch.library.opcheck(ns.bias_lrelu_pixel_norm.default, (x, b, 0.5, 0.2, 1.4, 1e-8))
    torch.library.opcheck(ns.bias_lrelu_pixel_norm.default, (x, None, 0.5, 0.2, 1.4, 1e-8))
    torch.library.opcheck(ns.bias_lrelu_pixel_norm_bwd.default, (g, x, b, 0.5, 0.2, 1.4, 1e-8, True))
    torch.library.opcheck(ns.bias_lrelu_pixel_norm_bwd.default, (g, x, None, 0.5, 0.2, 1.4, 1e-8, False))
    xc = x.detach().to(memory_format=torch.channels_last)
    torch.library.opcheck(ns.bias_lrelu.default, (xc, b.detach(), 0.5, 0.2, 1.4))
    torch.library.opcheck(ns.bias_lrelu_pixel_norm.default, (xc, b.detach(), 0.5, 0.2, 1.4, 1e-8))


@pytest.mark.parametrize("op", FUSED)
def test_compile_fullgraph_forward_backward(op):
    fn, ref = FUSED[op]
    x = torch.randn(4, 8, 6, 6, requires_grad=True)
    b = torch.randn(8, requires_grad=True)
    compiled = torch.compile(lambda t, bb: fn(t, bb, scale=0.5, gain=1.4, backend="cpp"), fullgraph=True)
    y = compiled(x, b)
    grads = torch.autograd.grad(y.square().sum(), (x, b))
    ye = ref(x, b, scale=0.5, gain=1.4)
    grads_e = torch.autograd.grad(ye.square().sum(), (x, b))
    torch.testing.assert_close(y, ye)
    for g, ge in zip(grads, grads_e):
        torch.testing.assert_close(g, ge)


def test_bias_grad_keeps_bias_dtype():
    """A float32 bias used with float64 activations gets a float32 gradient."""
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    b = torch.randn(3, requires_grad=True)
    ops.bias_lrelu(x, b).sum().backward()
    assert b.grad.dtype == torch.float32


@pytest.mark.parametrize("fn", [ops.bias_lrelu, ops.bias_lrelu_pixel_norm])
@pytest.mark.parametrize("bad, error, match", [
    (dict(x=torch.randn(4)), ValueError, r"x must have at least 2 dimensions"),
    (dict(x=torch.ones(2, 3, dtype=torch.int32)), TypeError, "x must be float16.*int32"),
    (dict(bias=torch.randn(4)), ValueError, "bias has 4 elements but x has 3 channels"),
    (dict(bias=torch.randn(3, 1)), ValueError, r"bias must be a 1-d tensor \(C,\)"),
    (dict(bias=torch.ones(3, dtype=torch.int64)), TypeError, "bias must be float16.*int64"),
    (dict(bias=torch.randn(3, device="meta")), ValueError, "bias is on meta but x is on cpu"),
    (dict(gain=0.0), ValueError, "gain must be > 0"),
    (dict(negative_slope=-0.1), ValueError, "negative_slope must be >= 0"),
    (dict(scale=float("nan")), ValueError, "scale must be finite"),
    (dict(scale=torch.tensor(1.0)), TypeError, "scale must be a Python number"),
])
def test_bad_input(fn, bad, error, match):
    kw = dict(x=torch.randn(2, 3, 4, 4), bias=torch.randn(3))
    kw.update(bad)
    x, bias = kw.pop("x"), kw.pop("bias")
    with pytest.raises(error, match=match):
        fn(x, bias, **kw)


@pytest.mark.parametrize("op", FUSED)
@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("memory_format", MEMORY_FORMATS)
def test_compile_runs_the_op(op, backend, memory_format):
    """torch.compile(fullgraph=True): the op and its _bwd op of the backend are in the compiled
    forward and backward graphs (not a fallback), and the results match the reference."""
    fn, ref = FUSED[op]
    x = torch.randn(4, 8, 6, 6, dtype=torch.float64).contiguous(memory_format=memory_format).requires_grad_()
    b = torch.randn(8, dtype=torch.float64, requires_grad=True)
    y, grads = assert_op_in_compiled_graph(lambda t, bb: fn(t, bb, scale=0.5, gain=1.4, backend=backend), (x, b),
                                           namespace_name(backend), op)
    ye = ref(x, b, scale=0.5, gain=1.4)
    grads_e = torch.autograd.grad(ye.square().sum(), (x, b))
    torch.testing.assert_close(y, ye)
    for g, ge in zip(grads, grads_e):
        torch.testing.assert_close(g, ge)


# Shapes past the C++ kernels' chunk threshold for the bias-gradient sums (at most kMaxChunks = 256
# partial sums: bias_lrelu channels inner splits N*S pixel lines, 2*16*17 = 544 -> chunks of 3
# lines with a short last one; bias_lrelu_pixel_norm splits N * ceil(S / 64) pixel blocks,
# 3 * ceil(90*100 / 64) = 423 -> chunks of 2; an (N, C) input runs its N rows over channels:
# 601 rows -> chunks of 3 with a short last one), run by two threads.
@pytest.mark.parametrize("op", FUSED)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("shape, memory_format", [((2, 5, 16, 17), torch.channels_last),
                                                  ((3, 4, 90, 100), torch.contiguous_format),
                                                  ((3, 4, 90, 100), torch.channels_last),
                                                  ((601, 9), torch.contiguous_format)], ids=str)
def test_multi_chunk_bias_gradient_matches_reference(op, dtype, shape, memory_format):
    assert torch.get_num_threads() >= 2
    fn, ref = FUSED[op]
    kw = SETTINGS[1]
    x = torch.randn(shape, dtype=torch.float64).contiguous(memory_format=memory_format)
    b = torch.randn(shape[1], dtype=torch.float64)
    check_parity(lambda t, bb: fn(t, bb, backend="cpp", **kw), lambda t, bb: ref(t, bb, **kw), [x, b], dtype,
                 layouts=False)


@pytest.mark.parametrize("op", FUSED)
@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("scale", [0.0, 0.02])
def test_bias_gradient_at_zero_and_equalized_lr_scales(op, backend, dtype, scale):
    """scale == 0 (the activation sees the bias alone; dx = 0, the bias gradient is not) and an
    equalized-LR scale of 0.02 (a half-precision sum of scale * dz would flush towards zero)."""
    fn, ref = FUSED[op]
    kw = dict(scale=scale, gain=math.sqrt(2))
    x = torch.randn(4, 16, 8, 8, dtype=torch.float64)
    b = torch.randn(16, dtype=torch.float64)
    check_parity(lambda t, bb: fn(t, bb, backend=backend, **kw), lambda t, bb: ref(t, bb, **kw), [x, b], dtype,
                 layouts=False)
