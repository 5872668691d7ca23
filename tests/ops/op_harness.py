"""Shared machinery for the per-op tests: which backends run here, input layouts, and the
parity rule against a float64 reference.

Parity rule (DESIGN.md §4), element by element: with r64 the reference computed in float64 and
r_dtype the reference computed in the tested dtype, both on the inputs rounded to that dtype (so
that only arithmetic error is measured), a backend's output a must satisfy

    |a - r64| <= 2 |r_dtype - r64| + ulp_dtype(|r64|)

for every element, the gradients (with a cotangent exact in the dtype) alike, plus one term, the
accumulation floor: ACCUMULATION_ULPS * sqrt(R) ulps, in the kernels' accumulation dtype (float32
for float16, bfloat16 and float32; float64 for float64), of max(1, the tensor's largest |r64|),
where R is the number of terms an output element sums (1 unless a test says; the inputs are
O(1), so 1 stands for the size of the terms that may cancel).

Why that term: the reference's error at one element is a single sample of rounding noise. Where
the kernel accumulates in the same precision as the reference (float32, float64; in float64
r_dtype *is* r64, so its error is 0), a correct kernel that sums in another order breaks the bare
rule at elements where terms cancel (measured on the CPU kernels: up to 800 ulps of |r64| in
float32 gradients, 8,600 in float64); in the half types, where r64 is exactly 0 by cancellation
(fade_in: 0.3 h + 0.7 l = 0), the float32 arithmetic leaves ~6e-8 that the bfloat16 reference
happened not to; a float64 sum of 16,900 squares in another order differs by ~14 ulps, and
instance_norm_act's affine gradients in float64 (sums of 48 terms that cancel to ~1) by ~27
ulps of the largest value; the six ops' CPU kernels needed at most 4 ulps otherwise. In the half
types the floor is 2^-18 of the largest value (times sqrt(R)), below a quarter of one bfloat16
or float16 ulp at that value, so there the rule stays the documented one wherever an element is
not ~0 (the old floor was 8 half-precision ulps times sqrt(R): for gradient_penalty in bfloat16,
14x the loss).

Where the reference is not finite in the tested dtype (eps underflowing to 0 in float16, say) an
element's bound is the ulp term alone.
"""

from __future__ import annotations

import os

import pytest
import torch

import pygan.ops as ops

#: backends whose kernels run on CPU tensors in this process
CPU_BACKENDS = ["cpp", "triton"]


def backend_param(name: str):
    """A pytest param for a backend, skipped with the registry's reason when it can't run here."""
    st = ops.available_backends()[name]
    reason = st.reason
    runs_on_cpu = name == "cpp" or (name == "triton" and os.environ.get("TRITON_INTERPRET") == "1")
    if st.available and not runs_on_cpu:
        reason = "the triton backend runs on CPU tensors only under TRITON_INTERPRET=1"
    ok = st.available and runs_on_cpu
    return pytest.param(name, id=name, marks=pytest.mark.skipif(not ok, reason=f"{name}: {reason}"))


BACKEND_PARAMS = [backend_param(b) for b in CPU_BACKENDS]

DTYPES = [torch.float64, torch.float32, torch.bfloat16, torch.float16]


def gradcheck_fast_mode(backend: str) -> bool:
    """``fast_mode`` for gradcheck / gradgradcheck on ``backend``: on for Triton, whose kernels
    run under the interpreter here at ~50 ms a launch, so the fast mode's random projection of
    the Jacobian (a few calls) replaces the full Jacobian (hundreds; up to 27 s a test). It still
    fails a halved or doubled term of each Triton backward kernel. cpp and the reference keep
    the full Jacobian."""
    return backend == "triton"


def namespace(backend: str):
    return torch.ops.pygan_triton if backend == "triton" else torch.ops.pygan


def layout_variants(x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The same values as ``x`` in several memory layouts."""
    out = {"contiguous": x.contiguous()}
    if x.dim() == 4:
        out["channels_last"] = x.contiguous(memory_format=torch.channels_last)
    # non-contiguous: a strided slice of a twice-as-wide tensor along the last dim
    wide = torch.stack([x, torch.full_like(x, float("nan"))], dim=-1).flatten(-2)
    out["strided"] = wide[..., ::2]
    if x.dim() >= 3:   # a transposed view: spatial dims swapped, made back into x's shape
        out["transposed"] = x.transpose(-1, -2).contiguous().transpose(-1, -2)
    return out


#: explicit mantissa bits and smallest normal exponent of each floating dtype (for ulps)
_FORMAT = {torch.float64: (52, -1022), torch.float32: (23, -126), torch.bfloat16: (7, -126),
           torch.float16: (10, -14)}


def ulp(magnitude: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The spacing of ``dtype``'s numbers at each float64 ``magnitude`` (>= 0): 2^(e - p) for
    2^e <= magnitude < 2^(e+1) with p mantissa bits, and the subnormal spacing 2^(emin - p)
    below the smallest normal number (and at 0)."""
    bits, emin = _FORMAT[dtype]
    _, e = torch.frexp(magnitude.double())          # magnitude = m * 2^e, 0.5 <= m < 1
    e = torch.where(magnitude == 0, emin, torch.clamp(e - 1, min=emin))
    return torch.ldexp(torch.ones_like(magnitude, dtype=torch.float64), e - bits)


#: ulps, in the accumulation dtype (float32 for the half types), of the tensor's largest |r64|
#: added to every element's bound (the module docstring says why and what was measured)
ACCUMULATION_ULPS = 32


def parity_bound(reference_in_dtype: torch.Tensor, reference_f64: torch.Tensor,
                 dtype: torch.dtype, reduction: int = 1) -> torch.Tensor:
    """Element by element: 2 |r_dtype - r64| + ulp_dtype(|r64|) + the accumulation floor,
    ACCUMULATION_ULPS * sqrt(reduction) ulps, in the accumulation dtype, of max(1, max |r64|)."""
    r64 = reference_f64.double()
    bound = 2 * (reference_in_dtype.double() - r64).abs() + ulp(r64.abs(), dtype)
    if r64.numel():
        acc = torch.float64 if dtype == torch.float64 else torch.float32
        magnitude = r64.abs().max().clamp(min=1.0)
        bound = bound + ACCUMULATION_ULPS * max(reduction, 1) ** 0.5 * ulp(magnitude, acc)
    return bound


def assert_parity(actual: torch.Tensor, reference_in_dtype: torch.Tensor,
                  reference_f64: torch.Tensor, what: str = "output", reduction: int = 1) -> None:
    """The parity rule of the module docstring, element by element; ``reduction`` is the number
    of terms each output element sums (it only scales the accumulation floor)."""
    assert actual.shape == reference_f64.shape, f"{what}: shape {actual.shape} != {reference_f64.shape}"
    assert actual.dtype == reference_in_dtype.dtype, f"{what}: dtype {actual.dtype}"
    assert torch.isfinite(actual).all(), f"{what}: non-finite values"
    if not actual.numel():
        return
    r64 = reference_f64.double()
    err = (actual.double() - r64).abs()
    bound = parity_bound(reference_in_dtype, r64, actual.dtype, reduction)
    # where the reference itself is not finite in this dtype (it overflows, or eps underflows
    # to 0 in float16), that element's bound is the float64 answer's ulp alone
    bound = torch.where(torch.isfinite(bound), bound, ulp(r64.abs(), actual.dtype))
    bad = err > bound
    if bad.any():
        i = int(torch.argmax((err - bound).flatten()))
        idx = tuple(int(v) for v in torch.unravel_index(torch.tensor(i), err.shape))
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {err.numel()} elements break |a - r64| <= 2 |r_{actual.dtype} - r64| "
            f"+ ulp(|r64|); worst at {idx}: a={actual[idx].item():.6e} r64={r64[idx].item():.6e} "
            f"r_{actual.dtype}={reference_in_dtype[idx].item():.6e} error {err[idx].item():.3e} > bound "
            f"{bound[idx].item():.3e}")


def random_like_shape(shape, dtype=torch.float64, **kw):
    return torch.randn(shape, dtype=torch.float64, **kw).to(dtype)


def _run(fn, tensors, cotangent, grads: bool):
    leaves = [t.detach().requires_grad_(grads) for t in tensors]   # detach keeps the strides
    out = fn(*leaves)
    if not grads:
        return out.detach(), []
    ins = [t for t in leaves if t.requires_grad]
    return out.detach(), list(torch.autograd.grad(out, ins, cotangent.to(out.dtype)))


def check_parity(fn, ref, inputs64, dtype, *, grads: bool = True, layouts: bool = True,
                 reduction: int = 1, device: str = "cpu") -> None:
    """``fn(*inputs)`` against ``ref(*inputs)``: the output and, with ``grads``, the gradients of
    <output, random cotangent> with respect to every tensor input, in every memory layout of
    the first input (built on ``device``); ``fn`` runs on ``device``. The float64 reference sees
    the inputs and the cotangent rounded to ``dtype``, so that the comparison measures
    arithmetic error only (not the rounding of the inputs)."""
    inputs64 = [t.to(dtype).double() for t in inputs64]
    ref_out64 = ref(*inputs64)
    cot = torch.randn(ref_out64.shape, dtype=torch.float64).to(dtype).double()   # exact in dtype
    out64, grads64 = _run(ref, inputs64, cot, grads)
    low = [t.to(dtype) for t in inputs64]
    out_ref, grads_ref = _run(ref, low, cot, grads)
    # the layouts are built on the device: .to(device) of a strided CPU view copies it densely,
    # and no strided input would reach a GPU kernel
    first_on_device = low[0].to(device)
    variants = layout_variants(first_on_device) if layouts else {"contiguous": first_on_device}
    if layouts:
        assert variants["strided"].stride(-1) == 2, "the strided layout lost its strides"
    for name, first in variants.items():
        on_device = [first, *(t.to(device) for t in low[1:])]
        out, gs = _run(fn, on_device, cot.to(device), grads)
        out, gs = out.cpu(), [g.cpu() for g in gs]
        assert_parity(out, out_ref, out64, f"{name} output", reduction)
        for i, (g, g_ref, g64) in enumerate(zip(gs, grads_ref, grads64)):
            assert_parity(g, g_ref, g64, f"{name} grad of input {i}", reduction)


MEMORY_FORMATS = [pytest.param(torch.contiguous_format, id="NCHW"),
                  pytest.param(torch.channels_last, id="channels_last")]


def compile_recording_ops(fn, args, loss=lambda out: out.square().sum()):
    """Run ``torch.compile(fn, fullgraph=True)`` forward and backward through Dynamo and
    AOTAutograd, with a backend that records the ops of the forward and backward graphs (and
    runs them as traced). Returns (outputs, gradients w.r.t. the inputs that require grad,
    {"forward": ops, "backward": ops}); ops are strings like ``pygan.pixel_norm.default``."""
    from torch._dynamo.backends.common import aot_autograd
    from torch._functorch.aot_autograd import make_boxed_func

    graphs = {"forward": set(), "backward": set()}

    def recorder(kind):
        def compiler(gm, example_inputs):
            graphs[kind].update(str(n.target) for n in gm.graph.nodes if n.op == "call_function")
            return make_boxed_func(gm.forward)
        return compiler

    backend = aot_autograd(fw_compiler=recorder("forward"), bw_compiler=recorder("backward"))
    out = torch.compile(fn, fullgraph=True, backend=backend)(*args)
    leaves = [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad]
    grads = torch.autograd.grad(loss(out), leaves) if leaves else ()
    return out, grads, graphs


def assert_op_in_compiled_graph(fn, args, ns: str, op: str, *, backward: bool = True,
                                loss=lambda out: out.square().sum()):
    """``torch.ops.<ns>.<op>`` is in the compiled forward graph of ``fn`` (and, with
    ``backward``, ``<op>_bwd`` in the backward graph): the compiled function really runs the
    pygan kernel, not a fallback. Returns (outputs, gradients) of the compiled run."""
    out, grads, graphs = compile_recording_ops(fn, args, loss)
    assert f"{ns}.{op}.default" in graphs["forward"], f"{ns}::{op} not in the forward graph: {graphs['forward']}"
    if backward:
        assert f"{ns}.{op}_bwd.default" in graphs["backward"], (
            f"{ns}::{op}_bwd not in the backward graph: {graphs['backward']}")
    return out, grads


#: dtypes of the opcheck tests: float64, and the half types, whose fake kernels and autograd
#: formulas have dtype rules of their own (gradient_penalty's norms are float32 there)
OPCHECK_DTYPES = [torch.float64, torch.bfloat16, torch.float16]


def namespace_name(backend: str) -> str:
    """The torch.ops namespace name of a compiled backend's ops."""
    return "pygan_triton" if backend == "triton" else "pygan"


def fade_in_parity_params(small, large, alphas=(0.0, 0.3, 1.0), large_alpha=0.3):
    """(low shape, high shape, alpha) parameters of the fade-in parity tests: every alpha on the
    ``small`` shape pairs; the ``large`` ones, there for the tiling (several programs along the
    grid's row axis; test_fade_in_tiles covers the inner axis), at ``large_alpha`` only. Alpha 0 and 1, the blend's exact edges, are checked on the
    small pairs; each run of a large pair took ~10 s under the Triton interpreter, which made the
    three alphas a fifth of CI's test time for fade_in alone."""
    params = [pytest.param(lo, hi, a, id=f"{a}-{lo}-{hi}") for lo, hi in small for a in alphas]
    return params + [pytest.param(lo, hi, large_alpha, id=f"{large_alpha}-{lo}-{hi}") for lo, hi in large]
