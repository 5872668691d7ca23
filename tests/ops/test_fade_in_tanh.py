"""fade_in(..., activation="tanh"): ``tanh(alpha * high + (1 - alpha) * up(low))`` on every
backend that runs here (reference, cpp, Triton under TRITON_INTERPRET=1), with gradients to
second order in low, high and a tensor alpha, upsampled and same-size.

The oracle is the ProGAN tutorial generator's method written out directly in float64, not
pygan's own reference:

    def fade_in(self, alpha, upscaled, generated):
        return torch.tanh(alpha * generated + (1 - alpha) * upscaled)

with ``upscaled = F.interpolate(low, scale_factor=2, mode="nearest")`` (or ``low`` itself when
the sizes match). Parity follows op_harness's rule (the backend's error against the float64
oracle at most 2x the oracle's own error in the tested dtype, plus one ulp and the accumulation
floor), element by element, for the output in every dtype and for first- and second-order
gradients in float64 and float32.

In bfloat16 and float16 two things change, both measured:

* Each implementation's gradients are measured against the float64 oracle given the forward
  output that implementation kept (:func:`tutorial_with_output`: the tutorial with tanh's value
  replaced by that output, its derivative 1 - y^2 read from it). Every backward of tanh reads
  the saved output y in the dtype (PyTorch's own tanh backward too), and 1 - y^2 turns its
  rounding into an error far above the dtype's ulp in saturation (alpha's gradient, inputs x4,
  bfloat16: 8.49 exact, 8.19 from the rounded y), and a one-ulp difference between two correctly
  computed outputs moves it as much. pygan's kernels sum g (1 - y^2) in float32 and round once,
  so they land within an ulp of their oracle; against the plain float64 oracle the rule flagged
  the more accurate backend wherever PyTorch's extra roundings happened to cancel y's error (0 to
  124 of 16,384 elements of (4, 16, 16, 16) gradients; the reference broke the rule with the
  roles swapped at 10 to 30 times as many elements). The output itself is held to the plain rule.
* Second-order gradients run through intermediate gradients that autograd materialises in the
  dtype (the gradient of y, -2 y g v), in pygan and PyTorch alike, before 2x2 sums and alpha's
  sum cancel them, so one element compares one sample of rounding noise with another. They are
  held to the rule over the whole tensor (:func:`assert_half_grad_parity`: error norm at most 2x
  the reference's, no element worse than 2x the reference's worst error plus an ulp and the
  floor) on tensors of at least 16 elements; alpha's second order and a 1x1 low's are checked
  in float32 and float64.
"""

import pytest
import torch
import torch.nn.functional as F
from op_harness import (BACKEND_PARAMS, DTYPES, MEMORY_FORMATS, OPCHECK_DTYPES, assert_op_in_compiled_graph,
                        assert_parity, fade_in_parity_params, gradcheck_fast_mode, layout_variants, namespace,
                        namespace_name, parity_bound, ulp)

import pygan.nn as pnn
import pygan.ops as ops

F64 = torch.float64
ALL_BACKENDS = [pytest.param("reference", id="reference"), *BACKEND_PARAMS]


def tutorial(low: torch.Tensor, high: torch.Tensor, alpha) -> torch.Tensor:
    """The tutorial's fade-in: ``torch.tanh(alpha * generated + (1 - alpha) * upscaled)``."""
    upscaled = F.interpolate(low, scale_factor=2, mode="nearest") if low.shape != high.shape else low
    return torch.tanh(alpha * high + (1 - alpha) * upscaled)


def tanh_op(backend, alpha=None):
    """fade_in with tanh as a function of (low, high, alpha) (or (low, high) with a fixed alpha)."""
    if alpha is None:
        return lambda lo, h, a: ops.fade_in(lo, h, a, activation="tanh", backend=backend)
    return lambda lo, h: ops.fade_in(lo, h, alpha, activation="tanh", backend=backend)


# (low shape, high shape): 1x1 -> 2x2, an odd and prime channel count, same-size, N=1; then a bigger one
CASES = [((1, 1, 1, 1), (1, 1, 2, 2)), ((2, 3, 4, 4), (2, 3, 8, 8)), ((1, 7, 3, 5), (1, 7, 6, 10)),
         ((2, 3, 4, 4), (2, 3, 4, 4))]
LARGE_CASES = [((3, 16, 8, 8), (3, 16, 16, 16))]
#: input scale: 1 keeps z = O(1); 4 drives many elements into tanh's saturation (1 - y^2 ~ 0)
SCALES = [1.0, 4.0]


def _leaves(tensors):
    return [t.detach().requires_grad_() for t in tensors]   # detach keeps the strides


def first_and_second_order(fn, tensors, cot, weights):
    """(output, first-order gradients of <out, cot>, second-order gradients of
    <first-order gradients, weights>) with respect to every tensor in ``tensors``."""
    leaves = _leaves(tensors)
    out = fn(*leaves)
    grads = torch.autograd.grad(out, leaves, cot.to(out.dtype), create_graph=True)
    s = sum((g * w.to(g.dtype)).sum() for g, w in zip(grads, weights))
    second = torch.autograd.grad(s, leaves, allow_unused=True)
    second = [torch.zeros_like(t) if g is None else g for g, t in zip(second, leaves)]
    return out.detach(), [g.detach() for g in grads], [g.detach() for g in second]


HALF = (torch.bfloat16, torch.float16)
#: second-order gradients in the half types are compared over tensors of at least this many
#: elements; smaller ones (alpha's, a 1x1 low) to second order in float32 and float64 only
MIN_ELEMENTS_HALF_SECOND_ORDER = 16


def assert_half_grad_parity(actual, reference_in_dtype, oracle_actual, oracle_reference, what, reduction=1,
                            *, whole_tensor=False):
    """A half-precision gradient against the float64 oracle given its own forward output:
    |a - oracle(a's y)| <= 2 |r_dtype - oracle(r's y)| + ulp + the accumulation floor per element
    (op_harness's rule, each error measured against the exact gradient given the output that
    implementation kept); with ``whole_tensor`` (second order, module docstring) the rule over the
    tensor: error norm <= 2 x the reference's + the ulps' norm, and no element worse than 2 x the
    reference's worst error + ulp + floor, on tensors of at least 16 elements."""
    assert actual.shape == oracle_actual.shape and actual.dtype == reference_in_dtype.dtype, what
    assert torch.isfinite(actual).all(), f"{what}: non-finite values"
    if not actual.numel() or (whole_tensor and actual.numel() < MIN_ELEMENTS_HALF_SECOND_ORDER):
        return   # too few samples of rounding noise to compare (module docstring)
    oa, orf = oracle_actual.double(), oracle_reference.double()
    err, ref_err = (actual.double() - oa).abs(), (reference_in_dtype.double() - orf).abs()
    ulps = ulp(oa.abs(), actual.dtype)
    floor = parity_bound(oa, oa, actual.dtype, reduction) - ulps     # the accumulation floor alone
    if whole_tensor:
        assert err.norm() <= 2 * ref_err.norm() + ulps.norm(), (
            f"{what}: error norm {err.norm():.3e} > 2 x the {actual.dtype} reference's {ref_err.norm():.3e} + ulps")
        bound = 2 * ref_err.max() + ulps + floor
    else:
        bound = 2 * ref_err + ulps + floor
    bad = err > bound
    if bad.any():
        k = int(torch.argmax((err - bound).flatten()))
        idx = tuple(int(v) for v in torch.unravel_index(torch.tensor(k), err.shape))
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {err.numel()} elements break the rule against the oracle given each "
            f"one's output; worst at {idx}: a={actual[idx].item():.6e} oracle={oa[idx].item():.6e} "
            f"r_{actual.dtype}={reference_in_dtype[idx].item():.6e} (its oracle {orf[idx].item():.6e}) "
            f"error {err[idx].item():.3e} > bound {bound[idx].item():.3e}")


def tutorial_with_output(y: torch.Tensor):
    """The tutorial in float64 with its tanh's value replaced by ``y`` (a backend's output in
    its dtype, as float64): the exact gradients given the output an implementation keeps (module
    docstring). tanh's derivative is written from the output, 1 - y^2, as autograd's own tanh
    backward does; differentiating it again goes through y, so it serves second order too."""
    class TanhWithOutput(torch.autograd.Function):
        @staticmethod
        def forward(ctx, z):
            out = y.to(z.dtype).clone()
            ctx.save_for_backward(out)
            return out

        @staticmethod
        def backward(ctx, g):
            (out,) = ctx.saved_tensors
            return g * (1 - out * out)

    def oracle(low, high, alpha):
        upscaled = F.interpolate(low, scale_factor=2, mode="nearest") if low.shape != high.shape else low
        return TanhWithOutput.apply(alpha * high + (1 - alpha) * upscaled)
    return oracle


def check_tanh_parity(fn, ref, inputs64, dtype, reductions, *, second_order=True, layouts=True,
                      ref_given_output=None, device="cpu", memory_format=None):
    """fn vs ref (both taking ``inputs64``'s order): outputs, first-order and second-order
    gradients, by op_harness's rule, over the layouts of the first input (or, with
    ``memory_format``, every 4-d input, the cotangent and the second-order weights in that one
    layout, as in training). In the half types each implementation's gradients are measured
    against ``ref_given_output(its output)``: ref whose tanh has that value (module docstring).
    ``fn`` runs on ``device``."""
    inputs64 = [t.to(dtype).double() for t in inputs64]           # values exact in dtype
    out64 = ref(*inputs64)
    cot = torch.randn(out64.shape, dtype=F64).to(dtype).double()
    weights = [torch.randn(t.shape, dtype=F64).to(dtype).double() for t in inputs64]
    r64 = first_and_second_order(ref, inputs64, cot, weights)
    rdt = first_and_second_order(ref, [t.to(dtype) for t in inputs64], cot, weights)
    half = dtype in HALF
    if half:
        oracle_ref = first_and_second_order(ref_given_output(rdt[0].double()), inputs64, cot, weights)
        assert torch.equal(oracle_ref[0], rdt[0].double()), "the oracle's output is the given one"

    def place(t):   # on the device, in memory_format when one is given
        t = t.to(device)
        return t.contiguous(memory_format=memory_format) if memory_format is not None and t.dim() == 4 else t

    rest = [place(t.to(dtype)) for t in inputs64[1:]]
    cot_d, weights_d = place(cot), [place(w) for w in weights]
    first = place(inputs64[0].to(dtype))
    if memory_format is not None:
        variants = {str(memory_format): first}
    else:
        variants = layout_variants(first) if layouts else {"contiguous": first}
    for name, first in variants.items():
        got = first_and_second_order(fn, [first, *rest], cot_d, weights_d)
        got = (got[0].cpu(), [g.cpu() for g in got[1]], [g.cpu() for g in got[2]])
        assert_parity(got[0], rdt[0], r64[0], f"{name} output")
        oracle_got = first_and_second_order(ref_given_output(got[0].double()), inputs64, cot, weights) if half else r64
        for order in (1, 2) if second_order else (1,):
            for i, g in enumerate(got[order]):
                what = f"{name} order-{order} grad of input {i}"
                if half:
                    assert_half_grad_parity(g, rdt[order][i], oracle_got[order][i], oracle_ref[order][i], what,
                                            reductions[i], whole_tensor=order == 2)
                else:
                    assert_parity(g, rdt[order][i], r64[order][i], what, reductions[i])


def test_the_oracle_is_the_tutorial_and_pygans_reference_matches_it():
    low, high = torch.randn(2, 3, 4, 4, dtype=F64), torch.randn(2, 3, 8, 8, dtype=F64)
    expected = torch.tanh(0.3 * high + (1 - 0.3) * F.interpolate(low, scale_factor=2, mode="nearest"))
    assert torch.equal(tutorial(low, high, 0.3), expected)
    assert torch.equal(ops.fade_in_reference(low, high, 0.3, "tanh"), expected)
    assert torch.equal(ops.fade_in_reference(low, high, 0.3, "linear"), ops.fade_in_reference(low, high, 0.3))


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("low_shape, high_shape, alpha", fade_in_parity_params(CASES, LARGE_CASES))
def test_parity_float_alpha(backend, dtype, low_shape, high_shape, alpha):
    """Float alpha (0, 1 and between): output, gradients of low and high, and their second-order
    gradients, each input in turn in every layout (contiguous, channels_last, strided, transposed)."""
    low, high = torch.randn(low_shape, dtype=F64), torch.randn(high_shape, dtype=F64)
    up = low_shape != high_shape
    fn = tanh_op(backend, alpha)
    check_tanh_parity(lambda h, lo: fn(lo, h), lambda h, lo: tutorial(lo, h, alpha), [high, low], dtype,
                      [1, 4 if up else 1], ref_given_output=lambda y: lambda h, lo: tutorial_with_output(y)(lo, h, alpha))
    check_tanh_parity(fn, lambda lo, h: tutorial(lo, h, alpha), [low, high], dtype, [4 if up else 1, 1],
                      ref_given_output=lambda y: lambda lo, h: tutorial_with_output(y)(lo, h, alpha))


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("up", [True, False], ids=["up", "same"])
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("alpha", [0.0, 0.45, 1.0])
def test_parity_tensor_alpha(backend, dtype, up, scale, alpha):
    """A 0-dim tensor alpha requiring grad: its first- and second-order gradients too; inputs
    scaled by 4 push many elements into saturation."""
    high = scale * torch.randn(2, 5, 6, 8, dtype=F64)
    low = scale * (torch.randn(2, 5, 3, 4, dtype=F64) if up else torch.randn(2, 5, 6, 8, dtype=F64))
    a = torch.tensor(alpha, dtype=F64)
    fn = tanh_op(backend)
    check_tanh_parity(lambda h, lo, al: fn(lo, h, al), lambda h, lo, al: tutorial(lo, h, al), [high, low, a], dtype,
                      [1, 4 if up else 1, high.numel()],
                      ref_given_output=lambda y: lambda h, lo, al: tutorial_with_output(y)(lo, h, al))


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("memory_format", MEMORY_FORMATS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("up", [True, False], ids=["up", "same"])
def test_parity_one_layout_throughout(backend, memory_format, dtype, up):
    """low, high, the incoming gradient and the second-order weights in one layout, as in
    training (the layouts test above varies one input and keeps the cotangent contiguous): the
    backward kernels read grad and the tanh output in the same layout. The output keeps high's."""
    high = torch.randn(2, 8, 6, 10, dtype=F64)
    low = torch.randn(2, 8, 3, 5, dtype=F64) if up else torch.randn(2, 8, 6, 10, dtype=F64)
    fn = tanh_op(backend, 0.35)
    check_tanh_parity(fn, lambda lo, h: tutorial(lo, h, 0.35), [low, high], dtype, [4 if up else 1, 1],
                      ref_given_output=lambda y: lambda lo, h: tutorial_with_output(y)(lo, h, 0.35),
                      memory_format=memory_format)
    fmt = dict(memory_format=memory_format)
    assert fn(low.to(dtype).contiguous(**fmt), high.to(dtype).contiguous(**fmt)).is_contiguous(**fmt)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("memory_format", MEMORY_FORMATS)
@pytest.mark.parametrize("up", [True, False], ids=["up", "same"])
def test_gradcheck_and_gradgradcheck(backend, memory_format, up):
    high = torch.randn(2, 3, 4, 6, dtype=F64).contiguous(memory_format=memory_format).requires_grad_()
    low = torch.randn(2, 3, 2, 3, dtype=F64) if up else torch.randn(2, 3, 4, 6, dtype=F64)
    low = low.contiguous(memory_format=memory_format).requires_grad_()
    alpha = torch.tensor(0.3, dtype=F64, requires_grad=True)
    fn = tanh_op(backend)
    fast = gradcheck_fast_mode(backend)
    assert torch.autograd.gradcheck(fn, (low, high, alpha), fast_mode=fast)
    assert torch.autograd.gradgradcheck(fn, (low, high, alpha), fast_mode=fast)
    assert torch.autograd.gradgradcheck(tanh_op(backend, 0.7), (low, high), fast_mode=fast)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("up", [True, False], ids=["up", "same"])
def test_gradcheck_and_gradgradcheck_of_the_backward_op(backend, up):
    """The ``_bwd`` op with ``tanh_out`` on its own, every differentiable input requiring grad
    (grad, alpha, tanh_out): its registered double backward, including d tanh_out."""
    ns = namespace(backend)
    g = torch.randn(2, 3, 4, 6, dtype=F64, requires_grad=True)
    y = torch.tanh(torch.randn(2, 3, 4, 6, dtype=F64)).requires_grad_()
    alpha = torch.tensor(0.3, dtype=F64, requires_grad=True)
    fn = lambda gg, a, yy: ns.fade_in_bwd(gg, a, up, yy)  # noqa: E731
    fast = gradcheck_fast_mode(backend)
    assert torch.autograd.gradcheck(fn, (g, alpha, y), fast_mode=fast)
    assert torch.autograd.gradgradcheck(fn, (g, alpha, y), fast_mode=fast)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("dtype", OPCHECK_DTYPES, ids=str)
def test_opcheck(backend, dtype):
    ns = namespace(backend)
    low = torch.randn(2, 3, 4, 5, dtype=dtype, requires_grad=True)
    high = torch.randn(2, 3, 8, 10, dtype=dtype, requires_grad=True)
    alpha = torch.tensor(0.25, dtype=dtype)
    alpha_grad = torch.tensor(0.25, dtype=dtype, requires_grad=True)
    g = torch.randn(2, 3, 8, 10, dtype=dtype, requires_grad=True)
    y = torch.tanh(torch.randn(2, 3, 8, 10, dtype=dtype)).requires_grad_()
    torch.library.opcheck(ns.fade_in.default, (low, high, alpha, True))
    torch.library.opcheck(ns.fade_in.default, (low, high, alpha_grad, True))
    torch.library.opcheck(ns.fade_in.default, (high, high.detach().clone(), alpha, True))
    torch.library.opcheck(ns.fade_in_bwd.default, (g, alpha, True, y))
    torch.library.opcheck(ns.fade_in_bwd.default, (g, alpha_grad, True, y))
    torch.library.opcheck(ns.fade_in_bwd.default, (g, alpha, False, y))
    cl = lambda t: t.detach().to(memory_format=torch.channels_last).requires_grad_()  # noqa: E731
    torch.library.opcheck(ns.fade_in.default, (cl(low), cl(high), alpha, True))
    torch.library.opcheck(ns.fade_in_bwd.default, (cl(g), alpha, True, cl(y)))
    torch.library.opcheck(ns.fade_in_bwd.default, (cl(g), alpha, True, y))   # mixed layouts


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("memory_format", MEMORY_FORMATS)
def test_compile_runs_the_op(backend, memory_format):
    """torch.compile(fullgraph=True): fade_in and fade_in_bwd of the backend are in the compiled
    forward and backward graphs (not a fallback), and the results, alpha's gradient included,
    match the tutorial."""
    cf = dict(memory_format=memory_format)
    low = torch.randn(2, 3, 4, 5, dtype=F64).contiguous(**cf).requires_grad_()
    high = torch.randn(2, 3, 8, 10, dtype=F64).contiguous(**cf).requires_grad_()
    alpha = torch.tensor(0.3, dtype=F64, requires_grad=True)
    y, grads = assert_op_in_compiled_graph(tanh_op(backend), (low, high, alpha), namespace_name(backend), "fade_in")
    ye = tutorial(low, high, alpha)
    grads_e = torch.autograd.grad(ye.square().sum(), (low, high, alpha))
    torch.testing.assert_close(y, ye)
    for g, ge in zip(grads, grads_e):
        torch.testing.assert_close(g, ge)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_activation_none_and_linear_are_the_linear_blend(backend):
    low, high = torch.randn(2, 3, 2, 2), torch.randn(2, 3, 4, 4)
    plain = ops.fade_in(low, high, 0.4, backend=backend)
    assert torch.equal(ops.fade_in(low, high, 0.4, activation=None, backend=backend), plain)
    assert torch.equal(ops.fade_in(low, high, 0.4, activation="linear", backend=backend), plain)
    torch.testing.assert_close(ops.fade_in(low, high, 0.4, activation="tanh", backend=backend), torch.tanh(plain))


@pytest.mark.parametrize("bad", ["relu", "Tanh", "", "sigmoid", torch.tanh, torch.nn.Tanh(), 1, True],
                         ids=["relu", "Tanh", "empty", "sigmoid", "torch.tanh", "nn.Tanh()", "1", "True"])
def test_bad_activation(bad):
    low, high = torch.randn(2, 3, 2, 2), torch.randn(2, 3, 4, 4)
    match = r"activation must be one of \(None, 'linear', 'tanh'\)"
    with pytest.raises(ValueError, match=match):
        ops.fade_in(low, high, 0.5, activation=bad)
    with pytest.raises(ValueError, match=match):
        ops.fade_in_reference(low, high, 0.5, bad)
    with pytest.raises(ValueError, match=match):
        pnn.FadeIn(activation=bad)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_backward_op_rejects_a_tanh_out_that_is_not_the_output(backend):
    """A direct call with tanh_out of another shape or dtype: a clear error naming tanh_out."""
    ns = namespace(backend)
    g = torch.randn(2, 3, 4, 4)
    error = ValueError if backend == "triton" else RuntimeError
    with pytest.raises(error, match="tanh_out must be the forward's output"):
        ns.fade_in_bwd(g, torch.tensor(0.5), True, torch.randn(2, 3, 2, 2))
    with pytest.raises(error, match="tanh_out must be the forward's output"):
        ns.fade_in_bwd(g, torch.tensor(0.5), True, torch.randn(2, 3, 4, 4, dtype=F64))


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_layer(backend):
    """pygan.nn.FadeIn(activation="tanh") is the tutorial's method; no parameters, no state."""
    layer = pnn.FadeIn(activation="tanh")
    assert "tanh" in repr(layer) and not layer.state_dict()
    low, high = torch.randn(2, 3, 2, 2, dtype=F64), torch.randn(2, 3, 4, 4, dtype=F64)
    with ops.use_backend(backend):
        out = layer(low, high, 0.25)
    torch.testing.assert_close(out, tutorial(low, high, 0.25), rtol=0, atol=1e-15)
    torch.testing.assert_close(pnn.FadeIn()(low, high, 0.25), ops.fade_in_reference(low, high, 0.25))
