"""GPU tests (marker ``gpu``) of instance_norm_act on CUDA tensors for the ``cuda`` and ``triton``
backends: parity in every dtype and layout (strided views built on the device), planes that fit
one block and planes split into chunks (256x256 at C = 64), gradcheck/gradgradcheck, opcheck, and
determinism. Skipped, with the reason, where no CUDA device is visible."""

import pytest
import torch
from op_harness import assert_parity, check_parity, namespace
from test_instance_norm_act import check_large_plane_accuracy

import pygan.ops as ops

pytestmark = pytest.mark.gpu

GPU_BACKENDS = [pytest.param(b, id=b) for b in ("cuda", "triton")]
DTYPES = [torch.float64, torch.float32, torch.bfloat16, torch.float16]
# (2, 37, 9, 11): odd sizes, one chunk per plane; (1, 8, 100, 100): 10,000-pixel planes, more than
# one chunk (8192) in the planes layout; (2, 40, 30, 30): 900 pixels, several channels_last chunks
SHAPES = [(2, 37, 9, 11), (1, 8, 100, 100), (2, 40, 30, 30), (3, 5, 64)]


def need(backend):
    st = ops.available_backends()[backend]
    if not st:
        pytest.skip(f"{backend}: {st.reason}")


def fn_ref(backend, activation="lrelu"):
    fn = lambda x, w, b, r: ops.instance_norm_act(x, w, b, activation=activation, residual=r,  # noqa: E731
                                                  backend=backend)
    ref = lambda x, w, b, r: ops.instance_norm_act_reference(x, w, b, activation=activation,  # noqa: E731
                                                             residual=r)
    return fn, ref


def inputs64(shape):
    N, C = shape[:2]
    view = (N, C) + (1,) * (len(shape) - 2)
    x = torch.randn(shape, dtype=torch.float64) * (0.5 + torch.rand(view, dtype=torch.float64)) + torch.randn(view, dtype=torch.float64)
    return [x, 1 + 0.5 * torch.randn(C, dtype=torch.float64), 0.3 * torch.randn(C, dtype=torch.float64),
            torch.randn(shape, dtype=torch.float64)]


@pytest.mark.parametrize("backend", GPU_BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_parity_on_gpu(backend, dtype, shape):
    need(backend)
    fn, ref = fn_ref(backend)
    check_parity(fn, ref, inputs64(shape), dtype, device="cuda")


@pytest.mark.parametrize("backend", GPU_BACKENDS)
@pytest.mark.parametrize("shape, memory_format", [
    pytest.param((1, 3, 512, 520), torch.contiguous_format, id="NCHW-512x520"),
    pytest.param((2, 4, 256, 256), torch.channels_last, id="channels_last-256x256"),
])
def test_large_planes_keep_the_reference_accuracy(backend, shape, memory_format):
    """Float32 errors within 2x eager's (on the CPU) on planes of 32 and 256 chunks: the chunk
    statistics and sums merge in two levels (one by one, Triton's channels_last y was 2.4x)."""
    need(backend)
    check_large_plane_accuracy(backend, shape, memory_format, device="cuda")


@pytest.mark.parametrize("backend", GPU_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_large_split_planes(backend, dtype, channels_last):
    """256x256 planes at C = 64: the split statistics path, forward and backward."""
    need(backend)
    x64, w64, b64, _ = inputs64((2, 64, 256, 256))
    x = x64.to(dtype).cuda()
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    w, b = w64.to(dtype).cuda(), b64.to(dtype).cuda()
    g = torch.randn_like(x)
    ns = namespace(backend)
    y = ns.instance_norm_act(x, w, b, None, 0.0, 1e-5)
    dx, dw, db = ns.instance_norm_act_bwd(g, x, w, b, 0.0, 1e-5)
    xd, wd, bd = (t.double().cpu().requires_grad_() for t in (x, w, b))
    y64 = ops.instance_norm_act_reference(xd, wd, bd, activation="relu")
    grads64 = torch.autograd.grad(y64, (xd, wd, bd), g.double().cpu())
    xl, wl, bl = (t.cpu().requires_grad_() for t in (x, w, b))
    yl = ops.instance_norm_act_reference(xl, wl, bl, activation="relu")
    grads_l = torch.autograd.grad(yl, (xl, wl, bl), g.cpu())
    assert_parity(y.cpu(), yl.detach(), y64.detach(), "output")
    for what, a, r_l, r64 in zip(("dx", "dw", "db"), (dx, dw, db), grads_l, grads64):
        assert_parity(a.cpu(), r_l, r64, what)


@pytest.mark.parametrize("backend", GPU_BACKENDS)
def test_strided_views_built_on_device(backend):
    """Non-contiguous inputs made on the GPU: a slice of every other column, a transposed view
    and a channels_last residual beside an NCHW x."""
    need(backend)
    x64, w64, b64, r64 = inputs64((2, 6, 10, 12))
    wide = torch.randn(2, 6, 10, 24, dtype=torch.float64, device="cuda")
    wide[..., ::2] = x64.cuda()
    views = {"sliced": wide[..., ::2],
             "transposed": x64.cuda().transpose(-1, -2).contiguous().transpose(-1, -2)}
    fn, ref = fn_ref(backend)
    r = r64.cuda().contiguous(memory_format=torch.channels_last)
    y64 = ref(x64, w64, b64, r64)
    for name, xv in views.items():
        assert not xv.is_contiguous()
        y = fn(xv, w64.cuda(), b64.cuda(), r)
        torch.testing.assert_close(y.cpu(), y64, rtol=1e-12, atol=1e-12, msg=name)


@pytest.mark.parametrize("backend", GPU_BACKENDS)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_gradcheck_and_gradgradcheck_on_gpu(backend, channels_last):
    need(backend)
    x, w, b, r = (t.cuda() for t in inputs64((2, 3, 4, 5)))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    ins = [t.requires_grad_() for t in (x, w, b, r)]
    fn, _ = fn_ref(backend)
    assert torch.autograd.gradcheck(fn, ins)
    assert torch.autograd.gradgradcheck(fn, ins)


@pytest.mark.parametrize("backend", GPU_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_opcheck_on_gpu(backend, dtype):
    need(backend)
    ns = namespace(backend)
    x, w, b, r = (t.to(dtype).cuda().requires_grad_() for t in inputs64((3, 6, 4, 5)))
    g = torch.randn_like(x)
    torch.library.opcheck(ns.instance_norm_act.default, (x, w, b, r, 0.2, 1e-5))
    torch.library.opcheck(ns.instance_norm_act.default, (x, None, None, None, 1.0, 1e-5))
    torch.library.opcheck(ns.instance_norm_act_bwd.default, (g, x, w, b, 0.2, 1e-5))
    torch.library.opcheck(ns.instance_norm_act_bwd.default, (g, x, None, None, 0.0, 1e-5))


@pytest.mark.parametrize("backend", GPU_BACKENDS)
def test_deterministic(backend):
    """No atomics: two runs give the same bits (split planes included)."""
    need(backend)
    x = torch.randn(1, 8, 100, 100, device="cuda")
    g = torch.randn_like(x)
    ns = namespace(backend)
    a = (ns.instance_norm_act(x, None, None, None, 0.2, 1e-5), *ns.instance_norm_act_bwd(g, x, None, None, 0.2, 1e-5))
    b = (ns.instance_norm_act(x, None, None, None, 0.2, 1e-5), *ns.instance_norm_act_bwd(g, x, None, None, 0.2, 1e-5))
    for u, v in zip(a, b):
        assert torch.equal(u, v)
