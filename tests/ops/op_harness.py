"""Shared machinery for the per-op tests: which backends run here, input layouts, and the
parity rule against a float64 reference.

Parity rule (DESIGN.md §4): a backend's error against the reference computed in float64 may be
at most twice the error of the reference itself computed in the tested dtype. In float64 the
reference error is zero, so a floor applies there: 8 ulps of the output's magnitude, times the
square root of the number of terms each output sums (the random-walk growth of rounding error
in any correct summation order). Where the reference is not finite in the tested dtype (eps
underflowing to 0 in float16, say) the floor is the bound.
"""

from __future__ import annotations

import math
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


def assert_parity(actual: torch.Tensor, reference_in_dtype: torch.Tensor,
                  reference_f64: torch.Tensor, what: str = "output", reduction: int = 1) -> None:
    """The parity rule of the module docstring."""
    assert actual.shape == reference_f64.shape, f"{what}: shape {actual.shape} != {reference_f64.shape}"
    assert actual.dtype == reference_in_dtype.dtype, f"{what}: dtype {actual.dtype}"
    assert torch.isfinite(actual).all(), f"{what}: non-finite values"
    ref = reference_f64.double()
    err = (actual.double() - ref).abs().max().item() if ref.numel() else 0.0
    ref_err = (reference_in_dtype.double() - ref).abs().max().item() if ref.numel() else 0.0
    scale = ref.abs().max().item() if ref.numel() else 0.0
    floor = 8 * torch.finfo(actual.dtype).eps * max(scale, 1.0) * max(reduction, 1) ** 0.5
    # where the reference itself overflows in this dtype (eps underflowing to 0 in float16,
    # say), the backend must still be within the floor of the float64 answer
    bound = max(2 * ref_err, floor) if math.isfinite(ref_err) else floor
    assert err <= bound, (f"{what}: max error {err:.3e} vs float64 reference exceeds {bound:.3e} "
                          f"(reference's own error in {actual.dtype}: {ref_err:.3e})")


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
    the first input; ``fn`` runs on ``device``. The float64 reference sees the inputs rounded to ``dtype``, so that the
    comparison measures arithmetic error only (not the rounding of the inputs)."""
    inputs64 = [t.to(dtype).double() for t in inputs64]
    ref_out64 = ref(*inputs64)
    cot = torch.randn(ref_out64.shape, dtype=torch.float64)
    out64, grads64 = _run(ref, inputs64, cot, grads)
    low = [t.to(dtype) for t in inputs64]
    out_ref, grads_ref = _run(ref, low, cot, grads)
    variants = layout_variants(low[0]) if layouts else {"contiguous": low[0]}
    for name, first in variants.items():
        on_device = [t.to(device) for t in (first, *low[1:])]   # .to keeps the strides
        out, gs = _run(fn, on_device, cot.to(device), grads)
        out, gs = out.cpu(), [g.cpu() for g in gs]
        assert_parity(out, out_ref, out64, f"{name} output", reduction)
        for i, (g, g_ref, g64) in enumerate(zip(gs, grads_ref, grads64)):
            assert_parity(g, g_ref, g64, f"{name} grad of input {i}", reduction)
