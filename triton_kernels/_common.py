"""Helpers shared by the Triton kernels: (N, C, S) views of tensors, block sizes, accumulation
dtypes, and a few ``@triton.jit`` functions (precise square root and division, float64 scalars,
rounding on store).

Layouts
-------
Every per-channel op sees its tensors as (N, C, S): dims 2.. collapsed into one spatial dim with
a single stride, exactly like ``csrc/common.cpp::as_ncs``. NCHW gives strides (C*S, S, 1) and
channels_last (S*C, 1, C), so both are read in place; a tensor whose spatial dims do not collapse
(a transposed view, a slice of a slice) is made contiguous first. Outputs are allocated the way
the fake kernels allocate them (``torch.empty_like``); when such an output does not collapse, the
kernel writes a contiguous work tensor that is copied into it (``ncs_output`` / ``finish``).

Blocks
------
Programs own [BLOCK_C, BLOCK_S] tiles of about TILE elements (:class:`Rows`): for channel
reductions all channels up to MAX_BLOCK_C (``triton.next_power_of_2(C)``; more channels loop over
chunks of that size), for elementwise passes the layout's innermost dim gets the larger share.
Every tail is masked. Grids are one-dimensional (no 65535 limit on grid dims y/z) and index
arithmetic is 64-bit from the program id on. Reductions across programs (bias gradients,
minibatch statistics, gradient norms) write per-program partial sums that are added in a fixed
order afterwards: no atomics, results reproducible bit for bit.

Scalars
-------
Float parameters are declared ``tl.float64`` in the kernel signatures, so on a GPU they arrive in
double precision (an undeclared Python float would be passed as float32, which would change the
float64 results), and are converted to the accumulation dtype inside the kernel with
:func:`scalar`, as the C++ kernels convert their ``double`` parameters to ``acc_t``.
"""

from __future__ import annotations

import contextlib
import os
from typing import NamedTuple

import torch
import triton
import triton.language as tl

#: Elements per program tile (one [BLOCK_C, BLOCK_S] block of loads).
TILE = 4096
#: Most channels per chunk of the per-pixel channel reductions; larger C loops over chunks.
MAX_BLOCK_C = 1024
#: Programs to aim for in the kernels that write per-program partial sums (bias gradients, norms):
#: enough to fill a GPU, few enough that the partials stay small.
TARGET_PROGRAMS = 1024

# The interpreter (TRITON_INTERPRET=1) converts float32 to bfloat16 by truncating the mantissa,
# where GPUs round to nearest even. Under the interpreter, `round_to` rounds by hand first so the
# stored bfloat16 values are the ones a GPU would store.
_INTERPRET = tl.constexpr(os.environ.get("TRITON_INTERPRET", "0") == "1")


def device_function(fn):
    """``@triton.jit`` for the helpers that kernels call.

    Under the interpreter every call of a nested ``@triton.jit`` function re-patches
    ``triton.language`` (measured 0.5 to 1 ms a call, 40% of the interpreted gradgradcheck
    tests' time). The interpreter runs kernels as Python with ``triton.language`` already patched
    for the launch, so there the helper is called as the plain function it is; compiled, it is a
    ``@triton.jit`` function inlined into its kernel as usual.
    """
    return fn if _INTERPRET else triton.jit(fn)


class NCS(NamedTuple):
    """A tensor seen as (N, C, S) with strides (sn, sc, ss)."""

    n: int
    c: int
    s: int
    sn: int
    sc: int
    ss: int

    @property
    def strides(self) -> tuple[int, int, int]:
        return self.sn, self.sc, self.ss

    def channels_inner(self) -> bool:
        """Channels are the innermost (smallest-stride) dim, as in channels_last."""
        return self.c > 1 and self.s > 1 and self.sc < self.ss


def as_ncs(t: torch.Tensor) -> NCS | None:
    """``t`` (N, C, *spatial) as (N, C, S) if dims 2.. collapse into one stride, else None."""
    n, sn = t.shape[0], t.stride(0)
    c, sc = (t.shape[1], t.stride(1)) if t.dim() >= 2 else (1, 0)
    s, ss = 1, 0
    for d in range(t.dim() - 1, 1, -1):
        size, stride = t.shape[d], t.stride(d)
        if size == 1:
            continue
        if s == 1:
            s, ss = size, stride
        elif stride == ss * s:
            s *= size
        else:
            return None
    return NCS(n, c, s, sn, sc, ss)


def ncs_input(t: torch.Tensor) -> tuple[torch.Tensor, NCS]:
    """``t`` itself when it collapses to (N, C, S), else a contiguous copy; with its view."""
    v = as_ncs(t)
    if v is None:
        t = t.contiguous()
        v = as_ncs(t)
    return t, v


def ncs_output(out: torch.Tensor) -> tuple[torch.Tensor, NCS]:
    """The tensor a kernel writes for ``out``: ``out`` itself if it collapses, else a contiguous
    work tensor that :func:`finish` copies into ``out``."""
    v = as_ncs(out)
    if v is not None:
        return out, v
    work = torch.empty(out.shape, dtype=out.dtype, device=out.device)
    return work, as_ncs(work)


def finish(out: torch.Tensor, work: torch.Tensor) -> torch.Tensor:
    if work is not out:
        out.copy_(work)
    return out


def empty_in_layout_of(shape, like: torch.Tensor) -> torch.Tensor:
    """A new tensor of ``shape``: channels_last when ``like`` is (and is not also plainly
    contiguous), else contiguous (the rule of ``pygan.ops.minibatch_std.output_memory_format``)."""
    cl = (like.dim() == 4 and like.is_contiguous(memory_format=torch.channels_last)
          and not like.is_contiguous())
    fmt = torch.channels_last if cl else torch.contiguous_format
    return torch.empty(shape, dtype=like.dtype, device=like.device, memory_format=fmt)


def acc_dtype(dtype: torch.dtype) -> tl.dtype:
    """The accumulation dtype in Triton terms: float64 for float64 inputs, else float32."""
    return tl.float64 if dtype == torch.float64 else tl.float32


def torch_acc_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def check_float(name: str, op: str, t: torch.Tensor) -> None:
    if t.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        raise TypeError(f"pygan_triton::{op}: {name} must be float16, bfloat16, float32 or "
                        f"float64; got {t.dtype}")


def device_guard(t: torch.Tensor):
    """Launch on ``t``'s GPU (Triton launches on the current device)."""
    if t.device.type == "cuda":
        return torch.cuda.device(t.device)
    return contextlib.nullcontext()


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def next_pow2(n: int) -> int:
    return triton.next_power_of_2(max(int(n), 1))


def num_warps(tile: int) -> int:
    return 8 if tile >= 4096 else 4 if tile >= 512 else 2 if tile >= 128 else 1


class Rows(NamedTuple):
    """How a kernel walks the pixels of an (N, C, S) tensor: ``rows`` blocks of BLOCK_S pixels.

    Unless ``flat``, a row block holds pixels of one sample (SB = ceil(S / BLOCK_S) blocks per
    sample), so the compiler sees unit-stride pixels as contiguous. When a sample has fewer
    pixels than the tile takes (S < BLOCK_S budget: small spatial sizes), blocks run over the
    N * S pixels of all samples (``flat``) so that no tile is left mostly empty.
    """

    block_c: int
    block_s: int
    sb: int
    rows: int
    flat: bool


def _rows(v: NCS, block_c: int) -> Rows:
    budget = max(1, TILE // block_c)
    if v.s >= budget or v.n == 1:
        block_s = min(next_pow2(v.s), budget)
        sb = cdiv(v.s, block_s)
        return Rows(block_c, block_s, sb, v.n * sb, False)
    block_s = min(next_pow2(v.n * v.s), budget)
    return Rows(block_c, block_s, 1, cdiv(v.n * v.s, block_s), True)


def reduction_rows(v: NCS) -> Rows:
    """Blocks for a reduction over channels at every pixel: all channels in one block up to
    MAX_BLOCK_C (more loop over chunks of that size), and as many pixels as the tile leaves."""
    return _rows(v, min(next_pow2(v.c), MAX_BLOCK_C))


def elementwise_rows(v: NCS) -> Rows:
    """Blocks for an elementwise pass over (C, pixels): the innermost dim of the layout gets the
    larger share of the tile, so loads along it coalesce."""
    if v.channels_inner():
        return _rows(v, min(next_pow2(v.c), TILE))
    block_s = min(next_pow2(v.s), TILE)
    return _rows(v, min(next_pow2(v.c), max(1, TILE // block_s)))


def split_rows(rows: int, blocks_per_row: int) -> tuple[int, int]:
    """Split ``rows`` row blocks into chunks, one per program (times ``blocks_per_row``), so that
    about TARGET_PROGRAMS programs run. Returns (chunks, rows per chunk). Depends on sizes only,
    so the partial sums, and the results, are the same on every run."""
    chunks = max(1, min(rows, TARGET_PROGRAMS // max(1, blocks_per_row)))
    per_chunk = cdiv(rows, chunks)
    return cdiv(rows, per_chunk), per_chunk


@device_function
def scalar(value, dtype: tl.constexpr):
    """A kernel's float64 parameter (a Python float under the interpreter) as a ``dtype`` scalar."""
    return tl.full([], value, dtype)


@device_function
def precise_sqrt(x):
    """IEEE square root (``tl.sqrt`` is an approximation for float32 on GPUs)."""
    if x.dtype == tl.float64:
        return tl.sqrt(x)
    else:
        return tl.sqrt_rn(x)


@device_function
def precise_div(a, b):
    """IEEE division, correctly rounded in float32 as in float64."""
    if a.dtype == tl.float64:
        return a / b
    else:
        return tl.div_rn(a, b)


@device_function
def precise_rsqrt(x):
    """1 / sqrt(x), each step correctly rounded (the C++ kernels' ``1 / std::sqrt``)."""
    return precise_div(tl.full(x.shape, 1.0, x.dtype), precise_sqrt(x))


@device_function
def round_to(x, dtype: tl.constexpr):
    """``x`` converted to ``dtype`` for a store, rounding to nearest even."""
    if _INTERPRET and dtype == tl.bfloat16:
        # round the float32 bits to the top 16 by hand; the truncating cast is then exact
        bits = x.to(tl.float32).to(tl.uint32, bitcast=True)
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
        return bits.to(tl.float32, bitcast=True).to(dtype)
    else:
        return x.to(dtype)


@device_function
def lrelu_gain(z, pos, neg):
    """gain * leaky_relu(z, slope) with pos = gain and neg = gain * slope."""
    return z * tl.where(z > 0, pos, neg)


@device_function
def row_pixels(row, S, SB, NS, BLOCK_S: tl.constexpr, FLAT: tl.constexpr):
    """(n, s, mask) for the BLOCK_S pixels of row block ``row`` (see :class:`Rows`), each a
    [BLOCK_S] vector (n is the same sample throughout unless FLAT)."""
    if FLAT:
        p = row * BLOCK_S + tl.arange(0, BLOCK_S)
        n = p // S
        return n, p - n * S, p < NS
    else:
        s = (row % SB) * BLOCK_S + tl.arange(0, BLOCK_S)
        return tl.full([BLOCK_S], 0, tl.int64) + row // SB, s, s < S
