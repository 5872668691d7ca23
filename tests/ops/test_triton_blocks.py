"""Code paths of the Triton kernels that the per-op tests' shapes do not reach: channel chunk
loops (C > MAX_BLOCK_C), bias partial sums accumulated over several row blocks and channel
chunks, row blocks inside one sample and across samples, and alpha / grad_loss read from memory
in the kernel (the path CUDA tensors take). Block limits are shrunk so that small tensors take
these paths under TRITON_INTERPRET=1; the results must match the reference in float64."""

import os

import pytest
import torch

import pygan.ops as ops

pytestmark = pytest.mark.skipif(
    not (ops.available_backends()["triton"] and (os.environ.get("TRITON_INTERPRET") == "1"
                                                 or torch.cuda.is_available())),
    reason=f"triton: {ops.available_backends()['triton'].reason}")

DEVICE = "cpu" if os.environ.get("TRITON_INTERPRET") == "1" else "cuda"


@pytest.fixture(params=["small_blocks", "one_row_per_program"])
def small_blocks(request, monkeypatch):
    from pygan.triton_kernels import _common
    monkeypatch.setattr(_common, "TILE", 32)          # few pixels per tile: many row blocks
    monkeypatch.setattr(_common, "MAX_BLOCK_C", 4)    # C > 4 loops over channel chunks
    monkeypatch.setattr(_common, "TARGET_PROGRAMS", 3 if request.param == "small_blocks" else 10**6)
    return request.param


def close(actual, expected):
    torch.testing.assert_close(actual, expected, rtol=1e-12, atol=1e-12)


def grads(fn, inputs, cotangent):
    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    out = fn(*leaves)
    return out.detach(), torch.autograd.grad(out, leaves, cotangent)


# NCHW with S >= the tile's pixel budget (row blocks inside a sample), tiny S (blocks across
# samples), channels_last, and odd sizes with tails everywhere; C <= MAX_BLOCK_C (all channels in
# one block, so a program sums the bias gradient over several row blocks in its one accumulator)
SHAPES = [(3, 11, 5, 7), (5, 9, 1, 2), (2, 6, 3, 3), (7, 3, 5, 7)]
LAYOUTS = [torch.contiguous_format, torch.channels_last]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("memory_format", LAYOUTS, ids=str)
@pytest.mark.parametrize("op", ["pixel_norm", "bias_lrelu", "bias_lrelu_pixel_norm"])
def test_per_channel_ops_small_blocks(small_blocks, shape, memory_format, op):
    x = torch.randn(shape, dtype=torch.float64, device=DEVICE).contiguous(memory_format=memory_format)
    cot = torch.randn(shape, dtype=torch.float64, device=DEVICE)
    if op == "pixel_norm":
        inputs = [x]
        fn = lambda backend: lambda t: ops.pixel_norm(t, backend=backend)  # noqa: E731
    else:
        inputs = [x, torch.randn(shape[1], dtype=torch.float64, device=DEVICE)]
        kw = dict(scale=0.7, negative_slope=0.2, gain=1.3)
        fn = lambda backend: lambda t, b: getattr(ops, op)(t, b, backend=backend, **kw)  # noqa: E731
    out, gs = grads(fn("triton"), inputs, cot)
    out_ref, gs_ref = grads(fn("reference"), inputs, cot)
    close(out, out_ref)
    for g, g_ref in zip(gs, gs_ref):
        close(g, g_ref)


@pytest.mark.parametrize("shape, group_size, num_channels",
                         [((8, 10, 3, 5), 4, 2), ((6, 9, 1, 1), 3, 3), ((4, 6, 7, 6), None, 1)],
                         ids=str)
@pytest.mark.parametrize("memory_format", LAYOUTS, ids=str)
def test_minibatch_std_small_blocks(small_blocks, shape, group_size, num_channels, memory_format,
                                    monkeypatch):
    from pygan.triton_kernels import minibatch_std as mbstd
    monkeypatch.setattr(mbstd, "REDUCE_BLOCK", 8)    # several blocks and chunks per (m, f)
    x = torch.randn(shape, dtype=torch.float64, device=DEVICE).contiguous(memory_format=memory_format)
    N, C, H, W = shape
    cot = torch.randn(N, C + num_channels, H, W, dtype=torch.float64, device=DEVICE)
    fn = lambda t, backend: ops.minibatch_std(t, group_size, num_channels, backend=backend)  # noqa: E731
    out, (gx,) = grads(lambda t: fn(t, "triton"), [x], cot)
    out_ref, (gx_ref,) = grads(lambda t: fn(t, "reference"), [x], cot)
    close(out, out_ref)
    close(gx, gx_ref)


@pytest.mark.parametrize("K", [1, 5, 3000, 40000])
def test_gradient_penalty_row_chunks(K, monkeypatch):
    from pygan.triton_kernels import gradient_penalty as gp
    monkeypatch.setattr(gp, "FINAL_BLOCK_N", 2)      # the finishing loop over samples
    g = torch.randn(5, K, dtype=torch.float64, device=DEVICE)
    loss, (d,) = grads(lambda t: ops.gradient_penalty(t, backend="triton"), [g], None)
    loss_ref, (d_ref,) = grads(lambda t: ops.gradient_penalty(t, backend="reference"), [g], None)
    close(loss, loss_ref)
    close(d, d_ref)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("upsampled", [True, False])
def test_fade_in_alpha_read_in_kernel(dtype, upsampled):
    """alpha read from memory inside the kernel (as for a CUDA alpha) equals alpha read on the host."""
    from pygan.triton_kernels import fade_in as fi
    high = torch.randn(2, 3, 4, 6, device=DEVICE).to(dtype)
    low = torch.randn(2, 3, 2, 3, device=DEVICE).to(dtype) if upsampled else torch.randn_like(high)
    alpha = torch.tensor(0.3, dtype=torch.float64, device=DEVICE)
    host_alpha = alpha.cpu()   # read on the host
    assert torch.equal(fi.launch_fade_in(low, high, alpha, alpha_from_ptr=True),
                       fi.launch_fade_in(low, high, host_alpha, alpha_from_ptr=False))
    in_kernel = fi.launch_fade_in_bwd(high, alpha, upsampled, alpha_from_ptr=True)
    on_host = fi.launch_fade_in_bwd(high, host_alpha, upsampled, alpha_from_ptr=False)
    assert all(torch.equal(u, v) for u, v in zip(in_kernel, on_host))
    ref = ops.fade_in_reference(low.double(), high.double(), 0.3)
    assert (fi.launch_fade_in(low, high, alpha, alpha_from_ptr=True).double() - ref).abs().max() \
        <= 2 * torch.finfo(dtype).eps * ref.abs().max()


def test_gradient_penalty_grad_loss_read_in_kernel():
    from pygan.triton_kernels import gradient_penalty as gp
    g = torch.randn(4, 3, 5, 5, dtype=torch.float64, device=DEVICE)
    g[1] = 0   # a zero norm: zero gradient
    loss, norms = torch.ops.pygan_triton.gradient_penalty(g, 1.0)
    gl = torch.tensor(0.7, dtype=torch.float64, device=DEVICE)
    in_kernel = gp.launch_gradient_penalty_bwd(gl, g, norms, 1.0, grad_loss_from_ptr=True)
    on_host = gp.launch_gradient_penalty_bwd(gl.cpu(), g, norms, 1.0, grad_loss_from_ptr=False)
    assert torch.equal(in_kernel, on_host)
    assert torch.equal(in_kernel[1], torch.zeros_like(in_kernel[1]))
    gr = g.clone().requires_grad_()
    (expected,) = torch.autograd.grad(ops.gradient_penalty_reference(gr) * 0.7, gr)
    close(in_kernel, expected)


def test_bias_grad_is_deterministic():
    """Bias gradients come from per-program partial sums added in a fixed order: bitwise equal."""
    x = torch.randn(4, 37, 9, 9, device=DEVICE)
    b = torch.randn(37, device=DEVICE)
    g = torch.randn_like(x)
    ns = torch.ops.pygan_triton
    out = ns.bias_lrelu(x, b, 0.5, 0.2, 1.4)
    first = [ns.bias_lrelu_bwd(g, out, 0.5, 0.2, 1.4, True)[1],
             ns.bias_lrelu_pixel_norm_bwd(g, x, b, 0.5, 0.2, 1.4, 1e-8, True)[1]]
    for _ in range(2):
        again = [ns.bias_lrelu_bwd(g, out, 0.5, 0.2, 1.4, True)[1],
                 ns.bias_lrelu_pixel_norm_bwd(g, x, b, 0.5, 0.2, 1.4, 1e-8, True)[1]]
        assert all(torch.equal(u, v) for u, v in zip(first, again))


# the interpreter's numpy warns about the 1/0 in the masked lanes; those lanes are never stored
@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning",
                            "ignore:invalid value:RuntimeWarning")
def test_zero_eps_keeps_bias_grad_finite():
    """Masked tail lanes must not poison the bias sums when eps = 0 (there r = 1/sqrt(0))."""
    x = torch.randn(3, 5, 3, 3, dtype=torch.float64, device=DEVICE)
    b = torch.randn(5, dtype=torch.float64, device=DEVICE)
    g = torch.randn_like(x)
    _, db = torch.ops.pygan_triton.bias_lrelu_pixel_norm_bwd(g, x, b, 0.5, 0.2, 1.4, 0.0, True)
    assert torch.isfinite(db).all()
    dx = torch.ops.pygan_triton.pixel_norm_bwd(g, x, 0.0)
    assert torch.isfinite(dx).all()
