"""GPU tests (marker ``gpu``): every op on CUDA tensors for the ``cuda`` and ``triton`` backends.

Skipped, with the reason, where no CUDA device is visible. On a GPU machine run them with
``python -m pytest -m gpu`` (scripts/gpu_check.sh does that after building pygan there).
"""

import math

import pytest
import torch
from op_harness import check_parity, namespace

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
        ("fade_in", lambda h, lo: ops.fade_in(lo, h, 0.3, backend=b),
         lambda h, lo: ops.fade_in_reference(lo, h, 0.3), [high, low]),
        ("fade_in_same", lambda h, lo: ops.fade_in(lo, h, 0.6, backend=b),
         lambda h, lo: ops.fade_in_reference(lo, h, 0.6), [high, high.flip(0)]),
        ("gradient_penalty", lambda t: ops.gradient_penalty(t, backend=b), ops.gradient_penalty_reference, [x]),
    ]


CASES = ["pixel_norm", "bias_lrelu", "bias_lrelu_pixel_norm", "minibatch_std", "fade_in", "fade_in_same",
         "gradient_penalty"]


@pytest.mark.parametrize("backend", GPU_BACKENDS)
@pytest.mark.parametrize("dtype", LOW_DTYPES + [torch.float64], ids=str)
@pytest.mark.parametrize("case", CASES)
def test_parity_on_gpu(backend, dtype, case):
    need(backend)
    name, fn, ref, inputs = next(c for c in case_fns(backend) if c[0] == case)
    reduction = inputs[0][0].numel() * inputs[0].shape[0] if case == "gradient_penalty" else 1
    check_parity(fn, ref, inputs, dtype, device="cuda", reduction=reduction)


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
        (ns.fade_in, (x[:, :, :2, :3].detach().requires_grad_(), torch.randn(4, 6, 4, 6, **d, requires_grad=True), alpha)),
        (ns.fade_in_bwd, (torch.randn(4, 6, 4, 6, **d, requires_grad=True), alpha, True)),
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
