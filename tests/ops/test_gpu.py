"""GPU tests (marker ``gpu``): every op on CUDA tensors for the ``cuda`` and ``triton`` backends.

Skipped, with the reason, where no CUDA device is visible. On a GPU machine run them with
``python -m pytest -m gpu`` (scripts/gpu_check.sh does that after building pygan there).
"""

import math

import pytest
import torch
from op_harness import assert_parity, check_parity, namespace

import pygan.ops as ops

pytestmark = pytest.mark.gpu

GPU_BACKENDS = [pytest.param(b, id=b) for b in ("cuda", "triton")]
LOW_DTYPES = [torch.float32, torch.bfloat16, torch.float16]


def need(backend):
    st = ops.available_backends()[backend]
    if not st:
        pytest.skip(f"{backend}: {st.reason}")


def case_fns(backend):
    """(name, fn, reference, inputs64) for every op on shapes that cover tails and layouts."""
    b = backend
    x = torch.randn(4, 37, 9, 11, dtype=torch.float64)
    bias = torch.randn(37, dtype=torch.float64)
    low, high = torch.randn(4, 37, 5, 6, dtype=torch.float64), torch.randn(4, 37, 10, 12, dtype=torch.float64)
    kw = dict(scale=0.3, gain=math.sqrt(2))
    return [
        ("pixel_norm", lambda t: ops.pixel_norm(t, backend=b), ops.pixel_norm_reference, [x]),
        ("bias_lrelu", lambda t, bb: ops.bias_lrelu(t, bb, backend=b, **kw),
         lambda t, bb: ops.bias_lrelu_reference(t, bb, **kw), [x, bias]),
        ("bias_lrelu_pixel_norm", lambda t, bb: ops.bias_lrelu_pixel_norm(t, bb, backend=b, **kw),
         lambda t, bb: ops.bias_lrelu_pixel_norm_reference(t, bb, **kw), [x, bias]),
        ("minibatch_std", lambda t: ops.minibatch_std(t, 2, 1, backend=b),
         lambda t: ops.minibatch_std_reference(t, 2, 1), [x]),
        # the ProGAN tutorial's torch.std form: whole batch, divisor N - 1, eps = 0; and pairs (divisor 1)
        ("minibatch_std_unbiased", lambda t: ops.minibatch_std(t, None, 1, 0.0, unbiased=True, backend=b),
         lambda t: ops.minibatch_std_reference(t, None, 1, 0.0, unbiased=True), [x]),
        ("minibatch_std_unbiased_pairs", lambda t: ops.minibatch_std(t, 2, 1, 1e-8, unbiased=True, backend=b),
         lambda t: ops.minibatch_std_reference(t, 2, 1, 1e-8, unbiased=True), [x]),
        ("fade_in", lambda h, lo: ops.fade_in(lo, h, 0.3, backend=b),
         lambda h, lo: ops.fade_in_reference(lo, h, 0.3), [high, low]),
        ("fade_in_same", lambda h, lo: ops.fade_in(lo, h, 0.6, backend=b),
         lambda h, lo: ops.fade_in_reference(lo, h, 0.6), [high, high.flip(0)]),
        ("gradient_penalty", lambda t: ops.gradient_penalty(t, backend=b), ops.gradient_penalty_reference, [x]),
    ]


CASES = ["pixel_norm", "bias_lrelu", "bias_lrelu_pixel_norm", "minibatch_std", "minibatch_std_unbiased",
         "minibatch_std_unbiased_pairs", "fade_in", "fade_in_same",
         "gradient_penalty"]


@pytest.mark.parametrize("backend", GPU_BACKENDS)
@pytest.mark.parametrize("dtype", LOW_DTYPES + [torch.float64], ids=str)
@pytest.mark.parametrize("case", CASES)
def test_parity_on_gpu(backend, dtype, case):
    need(backend)
    name, fn, ref, inputs = next(c for c in case_fns(backend) if c[0] == case)
    reduction = inputs[0][0].numel() * inputs[0].shape[0] if case == "gradient_penalty" else 1
    check_parity(fn, ref, inputs, dtype, device="cuda", reduction=reduction)


def packed_case_fns(backend, shape):
    """(name, fn, reference, inputs64) on an (N, C, H, W) shape, for the CUDA kernels' layout rules
    (csrc/act_norm_cuda.cuh, csrc/fade_in.cu): a 16-byte pack is V = 8, 4, 2 elements of a 2-, 4-,
    8-byte dtype, and a packed kernel runs where C (channels inner), H*W (pixels inner) or W
    (fade-in rows) is a multiple of V; other sizes run the scalar kernels."""
    b = backend
    n, c, h, w = shape
    x = torch.randn(n, c, h, w, dtype=torch.float64)
    bias = torch.randn(c, dtype=torch.float64)
    high, low = torch.randn(n, c, 2 * h, 2 * w, dtype=torch.float64), torch.randn(n, c, h, w, dtype=torch.float64)
    kw = dict(scale=0.3, gain=math.sqrt(2))
    return [
        ("pixel_norm", lambda t: ops.pixel_norm(t, backend=b), ops.pixel_norm_reference, [x]),
        ("bias_lrelu_pixel_norm", lambda t, bb: ops.bias_lrelu_pixel_norm(t, bb, backend=b, **kw),
         lambda t, bb: ops.bias_lrelu_pixel_norm_reference(t, bb, **kw), [x, bias]),
        ("fade_in", lambda h, lo: ops.fade_in(lo, h, 0.3, backend=b),
         lambda h, lo: ops.fade_in_reference(lo, h, 0.3), [high, low]),
        ("fade_in_same", lambda h, lo: ops.fade_in(lo, h, 0.6, backend=b),
         lambda h, lo: ops.fade_in_reference(lo, h, 0.6), [x, x.flip(0)]),
    ]


PACKED_CASES = ["pixel_norm", "bias_lrelu_pixel_norm", "fade_in", "fade_in_same"]
# (2, 24, 12, 24): every dtype packs (C, H*W and fade-in's W = 48 multiples of 8), and the last
# pixel tile of each sample is part-full (float16: 36 packs of 8 pixels, tiles of 32 packs).
# (3, 12, 5, 3): H*W odd, C % 4 == 0, fade-in's W = 6: float64 packs channels and fade-in rows,
# float32 channels only, float16/bfloat16 run the scalar kernels (but for the same-size fade-in,
# whose packed kernels take any dense size with a scalar tail).
PACKED_SHAPES = [pytest.param((2, 24, 12, 24), id="packs"), pytest.param((3, 12, 5, 3), id="mixed")]


@pytest.mark.parametrize("backend", GPU_BACKENDS)
@pytest.mark.parametrize("dtype", LOW_DTYPES + [torch.float64], ids=str)
@pytest.mark.parametrize("shape", PACKED_SHAPES)
@pytest.mark.parametrize("case", PACKED_CASES)
def test_parity_on_gpu_packed_shapes(backend, dtype, shape, case):
    """Every layout of the first input (contiguous: pixel packs; channels_last: channel packs in
    the forward; strided: scalar kernels) on shapes where the packed kernels run."""
    need(backend)
    _, fn, ref, inputs = next(c for c in packed_case_fns(backend, shape) if c[0] == case)
    check_parity(fn, ref, inputs, dtype, device="cuda")


def check_parity_in_layout(fn, ref, inputs64, dtype, memory_format, device="cuda"):
    """check_parity with every 4-D input and the cotangent in ``memory_format`` (check_parity
    varies only the first input and keeps the cotangent contiguous), so that the backward ops
    also run on one layout throughout, as in training."""
    inputs64 = [t.to(dtype).double() for t in inputs64]
    cot = torch.randn(ref(*inputs64).shape, dtype=torch.float64).to(dtype).double()   # exact in dtype

    def run(f, tensors, cotangent):
        leaves = [t.detach().requires_grad_() for t in tensors]
        out = f(*leaves)
        return out.detach(), torch.autograd.grad(out, leaves, cotangent.to(out.dtype))

    def place(t):
        t = t.to(device)
        return t.contiguous(memory_format=memory_format) if t.dim() == 4 else t

    out64, grads64 = run(ref, inputs64, cot)
    out_ref, grads_ref = run(ref, [t.to(dtype) for t in inputs64], cot)
    out, grads = run(fn, [place(t.to(dtype)) for t in inputs64], place(cot))
    assert_parity(out.cpu(), out_ref, out64, f"{memory_format} output")
    for i, (g, g_ref, g64) in enumerate(zip(grads, grads_ref, grads64)):
        assert_parity(g.cpu(), g_ref, g64, f"{memory_format} grad of input {i}")


@pytest.mark.parametrize("backend", GPU_BACKENDS)
@pytest.mark.parametrize("dtype", LOW_DTYPES + [torch.float64], ids=str)
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last], ids=str)
@pytest.mark.parametrize("shape", PACKED_SHAPES)
@pytest.mark.parametrize("case", PACKED_CASES)
def test_parity_on_gpu_one_layout_forward_and_backward(backend, dtype, memory_format, shape, case):
    """Inputs and incoming gradient share one layout: the channels_last backward kernels (channel
    packs) and the channels_last fade-in kernels run only here."""
    need(backend)
    _, fn, ref, inputs = next(c for c in packed_case_fns(backend, shape) if c[0] == case)
    check_parity_in_layout(fn, ref, inputs, dtype, memory_format)


@pytest.mark.parametrize("backend", GPU_BACKENDS)
@pytest.mark.parametrize("dtype", LOW_DTYPES + [torch.float64], ids=str)
@pytest.mark.parametrize("channels", [64, 37])
def test_parity_on_gpu_latent_pixel_norm(backend, dtype, channels):
    """Pixel norm of an (N, C) latent: with C % 8 == 0 the CUDA kernels pack channels."""
    need(backend)
    z = torch.randn(6, channels, dtype=torch.float64)
    check_parity(lambda t: ops.pixel_norm(t, backend=backend), ops.pixel_norm_reference, [z], dtype,
                 device="cuda")


@pytest.mark.parametrize("backend", GPU_BACKENDS)
@pytest.mark.parametrize("case", CASES)
def test_gradcheck_and_gradgradcheck_on_gpu(backend, case):
    need(backend)
    _, fn, _, inputs = next(c for c in case_fns(backend) if c[0] == case)
    small = [t[:2, :5, :4, :4].contiguous() if t.dim() == 4 else t[:5].contiguous() for t in inputs]
    if case == "fade_in":
        small = [inputs[0][:2, :5, :4, :4].contiguous(), inputs[1][:2, :5, :2, :2].contiguous()]
    if case in ("bias_lrelu", "bias_lrelu_pixel_norm"):
        small[0] = small[0] + 0.2 * small[0].sign()   # away from the leaky-ReLU kink
    args = [t.cuda().requires_grad_() for t in small]
    assert torch.autograd.gradcheck(fn, args)
    if case != "gradient_penalty":     # first order only by design
        assert torch.autograd.gradgradcheck(fn, args)


@pytest.mark.parametrize("backend", GPU_BACKENDS)
def test_opcheck_on_gpu(backend):
    need(backend)
    ns = namespace(backend)
    d = dict(device="cuda", dtype=torch.float32)
    x = torch.randn(4, 6, 5, 7, **d, requires_grad=True)
    g = torch.randn(4, 6, 5, 7, **d, requires_grad=True)
    b = torch.randn(6, **d, requires_grad=True)
    alpha = torch.tensor(0.3, **d)
    out = ns.bias_lrelu(x, b, 0.5, 0.2, 1.4).detach()
    loss, norms = ns.gradient_penalty(x.detach(), 1.0)
    for op, args in [
        (ns.pixel_norm, (x, 1e-8)), (ns.pixel_norm_bwd, (g, x, 1e-8)),
        (ns.bias_lrelu, (x, b, 0.5, 0.2, 1.4)), (ns.bias_lrelu_bwd, (g, out, 0.5, 0.2, 1.4, True)),
        (ns.bias_lrelu_pixel_norm, (x, b, 0.5, 0.2, 1.4, 1e-8)),
        (ns.bias_lrelu_pixel_norm_bwd, (g, x, b, 0.5, 0.2, 1.4, 1e-8, True)),
        (ns.minibatch_std, (x, 2, 3, 1e-8)),
        (ns.minibatch_std_bwd, (torch.randn(4, 9, 5, 7, **d, requires_grad=True), x, 2, 3, 1e-8)),
        (ns.minibatch_std, (x, 4, 3, 0.0, True)),
        (ns.minibatch_std_bwd, (torch.randn(4, 9, 5, 7, **d, requires_grad=True), x, 4, 3, 0.0, True)),
        (ns.fade_in, (x[:, :, :2, :3].detach().requires_grad_(), torch.randn(4, 6, 4, 6, **d, requires_grad=True), alpha)),
        (ns.fade_in_bwd, (torch.randn(4, 6, 4, 6, **d, requires_grad=True), alpha, True)),
        (ns.fade_in, (x[:, :, :2, :3].detach().requires_grad_(), torch.randn(4, 6, 4, 6, **d, requires_grad=True),
                      alpha, True)),
        (ns.fade_in_bwd, (torch.randn(4, 6, 4, 6, **d, requires_grad=True), alpha, True,
                          torch.rand(4, 6, 4, 6, **d).requires_grad_())),
        (ns.gradient_penalty, (x, 1.0)),
    ]:
        torch.library.opcheck(op.default, args)
    torch.library.opcheck(ns.gradient_penalty_bwd.default, (torch.tensor(1.0, **d), x.detach(), norms, 1.0),
                          test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_dynamic"))


@pytest.mark.parametrize("backend", GPU_BACKENDS)
def test_wgan_gp_gradients_match_reference_on_gpu(backend):
    need(backend)
    from test_wgan_gp import make_params, wgan_gp_step
    real = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    fake = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    mix = torch.rand(4, 1, 1, 1, dtype=torch.float64)
    loss_ref, grads_ref = wgan_gp_step("reference", real, fake, mix, torch.contiguous_format)
    loss, grads = wgan_gp_step(backend, real.cuda(), fake.cuda(), mix.cuda(), torch.contiguous_format,
                               device="cuda")
    torch.testing.assert_close(loss.cpu(), loss_ref, rtol=0, atol=1e-10)
    for name, gr, g_ref in zip(make_params(), grads, grads_ref):
        torch.testing.assert_close(gr.cpu(), g_ref, rtol=0, atol=1e-10, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("backend", GPU_BACKENDS)
def test_cuda_graph_capture_and_replay_of_a_step_with_every_op(backend):
    """A WGAN-GP-style step that uses all six ops, captured once and replayed: no op may
    synchronise with the host, and replays must reproduce the eager result."""
    need(backend)
    torch.manual_seed(0)
    dev = "cuda"
    w = torch.randn(8, 3, 3, 3, device=dev, requires_grad=True)
    b = torch.randn(8, device=dev, requires_grad=True)
    alpha = torch.tensor(0.4, device=dev)
    real = torch.randn(4, 3, 16, 16, device=dev)
    fake = torch.randn(4, 3, 16, 16, device=dev)
    mix = torch.rand(4, 1, 1, 1, device=dev)

    def step():
        with ops.use_backend(backend):
            x_hat = (mix * real + (1 - mix) * fake).requires_grad_()
            h = torch.nn.functional.conv2d(x_hat, w, padding=1)
            h = ops.bias_lrelu(h, b, scale=0.2, gain=1.4)
            low = ops.pixel_norm(torch.nn.functional.avg_pool2d(h, 2))
            h = ops.fade_in(low, h, alpha)
            h = ops.bias_lrelu_pixel_norm(h, b, scale=0.5)
            h = ops.minibatch_std(h, group_size=2)
            score = h.mean(dim=(1, 2, 3))
            (grad,) = torch.autograd.grad(score.sum(), x_hat, create_graph=True)
            loss = score.mean() + 10 * ops.gradient_penalty(grad)
            gw, gb = torch.autograd.grad(loss, (w, b))
            return loss.detach(), gw, gb

    eager = step()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(2):
            step()
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = step()
    real.normal_()          # new data in the captured input buffers
    graph.replay()
    torch.cuda.synchronize()
    fresh = step()
    for c, f in zip(captured, fresh):
        torch.testing.assert_close(c, f)
    assert not torch.equal(eager[0], fresh[0])   # the replay really used the new inputs


@pytest.mark.parametrize("backend", GPU_BACKENDS)
@pytest.mark.parametrize("dtype", LOW_DTYPES + [torch.float64], ids=str)
@pytest.mark.parametrize("op", ["bias_lrelu", "bias_lrelu_pixel_norm"])
@pytest.mark.parametrize("scale", [0.0, 0.02])
def test_bias_gradient_at_zero_and_equalized_lr_scales_on_gpu(backend, dtype, op, scale):
    """scale == 0 with a bias gradient (the CUDA backward once recomputed the activation with
    scale 1, so dz and the bias gradient were wrong), and an equalized-LR scale of 0.02, where a
    float16 bias gradient summed from round(scale * dz) / scale flushes towards zero."""
    need(backend)
    fn, ref = getattr(ops, op), getattr(ops, op + "_reference")
    x = torch.randn(8, 24, 16, 16, dtype=torch.float64)
    bias = torch.randn(24, dtype=torch.float64)
    kw = dict(scale=scale, gain=math.sqrt(2))
    check_parity(lambda t, bb: fn(t, bb, backend=backend, **kw), lambda t, bb: ref(t, bb, **kw),
                 [x, bias], dtype, device="cuda")


@pytest.mark.parametrize("op, args", [
    ("pixel_norm_bwd", lambda d: (torch.randn(2, 3, 4, 4, device=d[0]), torch.randn(2, 3, 4, 4, device=d[1]), 1e-8)),
    ("bias_lrelu", lambda d: (torch.randn(2, 3, 4, 4, device=d[0]), torch.randn(3, device=d[1]), 1.0, 0.2, 1.0)),
    ("bias_lrelu_bwd", lambda d: (torch.randn(2, 3, 4, 4, device=d[0]), torch.randn(2, 3, 4, 4, device=d[1]),
                                  1.0, 0.2, 1.0, True)),
    ("bias_lrelu_pixel_norm_bwd", lambda d: (torch.randn(2, 3, 4, 4, device=d[0]), torch.randn(2, 3, 4, 4, device=d[1]),
                                             None, 1.0, 0.2, 1.0, 1e-8, False)),
    ("minibatch_std_bwd", lambda d: (torch.randn(2, 4, 4, 4, device=d[0]), torch.randn(2, 3, 4, 4, device=d[1]),
                                     2, 1, 1e-8)),
    ("fade_in", lambda d: (torch.randn(2, 3, 2, 2, device=d[1]), torch.randn(2, 3, 4, 4, device=d[0]),
                           torch.tensor(0.3, device=d[0]))),
    ("gradient_penalty_bwd", lambda d: (torch.tensor(1.0, device=d[0]), torch.randn(2, 3, device=d[0]),
                                        torch.ones(2, device=d[1]), 1.0)),
])
def test_cuda_ops_reject_tensors_on_another_device(op, args):
    """A direct call of a CUDA op with one tensor on the CPU: a clear error naming the argument,
    not an illegal memory access (the Python wrappers check devices; the ops must too)."""
    need("cuda")
    with pytest.raises(RuntimeError, match=r"is on cpu but .* is on cuda|must be a CUDA tensor"):
        getattr(torch.ops.pygan, op)(*args(("cuda", "cpu")))
    torch.cuda.synchronize()   # and nothing illegal was launched


def test_compile_fullgraph_with_the_cuda_backend_runs_the_cuda_op():
    """torch.compile(fullgraph=True) of an op with backend="cuda": the backend probe used to
    query the dispatcher on every call, which Dynamo cannot trace."""
    need("cuda")
    from op_harness import assert_op_in_compiled_graph
    x = torch.randn(4, 8, 6, 6, device="cuda", requires_grad=True)
    assert_op_in_compiled_graph(lambda t: ops.pixel_norm(t, backend="cuda"), (x,), "pygan", "pixel_norm")


# fade_in(activation="tanh") on the GPU: the tutorial's fade-in, to second order, by the rules of
# tests/ops/test_fade_in_tanh.py (its module docstring says why the half types differ)
TANH_SHAPES = PACKED_SHAPES + [pytest.param((4, 37, 5, 6), id="odd")]


@pytest.mark.parametrize("backend", GPU_BACKENDS)
@pytest.mark.parametrize("dtype", LOW_DTYPES + [torch.float64], ids=str)
@pytest.mark.parametrize("shape", TANH_SHAPES)
@pytest.mark.parametrize("up", [True, False], ids=["up", "same"])
@pytest.mark.parametrize("memory_format", [None, torch.contiguous_format, torch.channels_last],
                         ids=["layouts", "nchw", "channels_last"])
def test_fade_in_tanh_parity_on_gpu(backend, dtype, shape, up, memory_format):
    """Output, first- and second-order gradients of low, high and a CUDA alpha tensor (read in
    the kernels) against the tutorial: every layout of high (None) or everything in one layout,
    on shapes where the packed kernels run (packs, mixed) and where they don't (odd)."""
    need(backend)
    from test_fade_in_tanh import check_tanh_parity, tutorial, tutorial_with_output
    n, c, h, w = shape
    high = torch.randn(n, c, 2 * h, 2 * w, dtype=torch.float64)
    low = torch.randn(n, c, h, w, dtype=torch.float64) if up else torch.randn(n, c, 2 * h, 2 * w, dtype=torch.float64)
    alpha = torch.tensor(0.3, dtype=torch.float64)
    check_tanh_parity(lambda hi, lo, a: ops.fade_in(lo, hi, a, activation="tanh", backend=backend),
                      lambda hi, lo, a: tutorial(lo, hi, a), [high, low, alpha], dtype,
                      [1, 4 if up else 1, high.numel()],
                      ref_given_output=lambda y: lambda hi, lo, a: tutorial_with_output(y)(lo, hi, a),
                      device="cuda", memory_format=memory_format)


@pytest.mark.parametrize("backend", GPU_BACKENDS)
@pytest.mark.parametrize("up", [True, False], ids=["up", "same"])
def test_fade_in_tanh_gradcheck_and_gradgradcheck_on_gpu(backend, up):
    need(backend)
    high = torch.randn(2, 5, 4, 4, dtype=torch.float64, device="cuda", requires_grad=True)
    low = torch.randn(2, 5, 2, 2, dtype=torch.float64, device="cuda") if up else torch.randn_like(high)
    low.requires_grad_()
    alpha = torch.tensor(0.3, dtype=torch.float64, device="cuda", requires_grad=True)
    fn = lambda lo, hi, a: ops.fade_in(lo, hi, a, activation="tanh", backend=backend)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (low, high, alpha))
    assert torch.autograd.gradgradcheck(fn, (low, high, alpha))
