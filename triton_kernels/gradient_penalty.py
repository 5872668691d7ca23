"""Gradient-penalty norm term in Triton (the maths of ``pygan.ops.gradient_penalty``).

Forward, with grad seen as N rows of K = numel / N elements:

    norms[n] = sqrt(sum_k grad[n, k]^2)                (float32 for half inputs, else grad's dtype)
    loss = mean_n (norms[n] - target)^2                (0-dim, grad's dtype; summed in float64)

Backward (``gradient_penalty_bwd(grad_loss, grad, norms, target)``):

    d grad[n, k] = grad_loss * 2 / N * (1 - target / norms[n]) * grad[n, k],  0 where norms[n] = 0

Gradient order: first only (``pygan.ops.gradient_penalty`` registers a ``_bwd`` derivative that
raises).

Rows: any dense layout whose batch dim is outermost (NCHW, channels_last) is read in memory order
(a row's norm does not depend on the order of its elements); other layouts are made contiguous.
Forward: each program sums the squares of a fixed chunk of one row into a partial sum; one small
program then adds each row's partials in order, takes the square roots and the mean. No atomics,
deterministic. grad_loss is read on the host only when it is a CPU tensor; a CUDA grad_loss is
read in the kernel (no synchronisation).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import _common as cm
from ._common import precise_sqrt, round_to, scalar

#: Elements per partial sum: rows are split at fixed offsets (like the C++ kernel's kRowChunk).
ROW_CHUNK = 1 << 14
BLOCK = 2048
FINAL_BLOCK_N = 128


@triton.jit
def _sumsq_partial_kernel(g_ptr, part_ptr, K, CHUNKS,
                          ACC: tl.constexpr, BLOCK: tl.constexpr, ROW_CHUNK: tl.constexpr):
    """part[n * CHUNKS + k] = sum of grad[n, j]^2 over j in [k * ROW_CHUNK, (k + 1) * ROW_CHUNK)."""
    pid = tl.program_id(0).to(tl.int64)
    n = pid // CHUNKS
    j0 = (pid % CHUNKS) * ROW_CHUNK
    row = g_ptr + n * K
    acc = tl.full([BLOCK], 0, ACC)
    for j in tl.static_range(0, ROW_CHUNK, BLOCK):
        idx = j0 + j + tl.arange(0, BLOCK)
        v = tl.load(row + idx, mask=idx < K, other=0.0).to(ACC)
        acc += v * v
    tl.store(part_ptr + pid, tl.sum(acc, axis=0))


@triton.jit
def _finish_kernel(part_ptr, norms_ptr, loss_ptr, N, CHUNKS, target: tl.float64,
                   ACC: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """One program: norms[n] = sqrt(sum_k part[n, k]); loss = mean_n (norms[n] - target)^2."""
    t = scalar(target, tl.float64)
    loss = tl.full([BLOCK_N], 0, tl.float64)
    for n0 in range(0, N, BLOCK_N):
        n = n0 + tl.arange(0, BLOCK_N)
        n_mask = n < N
        sq = tl.full([BLOCK_N, BLOCK_K], 0, ACC)
        for k0 in range(0, CHUNKS, BLOCK_K):
            k = k0 + tl.arange(0, BLOCK_K)
            mask = n_mask[:, None] & (k < CHUNKS)[None, :]
            sq += tl.load(part_ptr + n[:, None].to(tl.int64) * CHUNKS + k[None, :], mask=mask,
                          other=0.0)
        norm = precise_sqrt(tl.sum(sq, axis=1))
        tl.store(norms_ptr + n, norm, mask=n_mask)
        d = norm.to(tl.float64) - t
        loss += tl.where(n_mask, d * d, 0.0)
    mean = tl.sum(loss, axis=0) / scalar(N, tl.float64)
    if loss_ptr.dtype.element_ty != tl.float64:
        mean = mean.to(tl.float32)   # float64 -> 16-bit through float32, a conversion every GPU has
    tl.store(loss_ptr, round_to(mean, loss_ptr.dtype.element_ty))


@triton.jit
def _bwd_kernel(g_ptr, norms_ptr, d_ptr, gl_ptr, grad_loss: tl.float64, target: tl.float64,
                N, K, CHUNKS,
                GL_FROM_PTR: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr,
                ROW_CHUNK: tl.constexpr):
    pid = tl.program_id(0).to(tl.int64)
    n = pid // CHUNKS
    j0 = (pid % CHUNKS) * ROW_CHUNK
    # the row's coefficient in float64, as the C++ kernel computes it, then in ACC
    if GL_FROM_PTR:
        gl = tl.load(gl_ptr).to(tl.float64)
    else:
        gl = scalar(grad_loss, tl.float64)
    norm = tl.load(norms_ptr + n).to(tl.float64)
    safe = tl.where(norm > 0, norm, 1.0)
    coef = gl * 2.0 / scalar(N, tl.float64) * (1.0 - scalar(target, tl.float64) / safe)
    coef = tl.where(norm > 0, coef, 0.0).to(ACC)
    row = g_ptr + n * K
    out = d_ptr + n * K
    for j in tl.static_range(0, ROW_CHUNK, BLOCK):
        idx = j0 + j + tl.arange(0, BLOCK)
        mask = idx < K
        v = tl.load(row + idx, mask=mask, other=0.0).to(ACC)
        tl.store(out + idx, round_to(coef * v, d_ptr.dtype.element_ty), mask=mask)


def _non_overlapping_and_dense(t: torch.Tensor) -> bool:
    """The elements of t fill a block of memory exactly once (any dim order)."""
    expected = 1
    for stride, size in sorted((st, sz) for sz, st in zip(t.shape, t.stride()) if sz != 1):
        if stride != expected:
            return False
        expected *= size
    return True


def _batch_outer_dense(t: torch.Tensor) -> bool:
    """Dense with the batch dim outermost: row n is the memory block [n * K, (n + 1) * K)."""
    return _non_overlapping_and_dense(t) and (t.shape[0] == 1
                                              or t.stride(0) == t.numel() // t.shape[0])


def _as_rows(t: torch.Tensor) -> torch.Tensor:
    return t if _batch_outer_dense(t) else t.contiguous()


def _check(op: str, grad: torch.Tensor) -> None:
    if grad.dim() < 1 or grad.shape[0] < 1:
        raise ValueError(f"pygan_triton::{op}: grad must be an (N, ...) tensor with N >= 1, got "
                         f"{tuple(grad.shape)}")
    cm.check_float("grad", op, grad)


def gradient_penalty(grad: torch.Tensor, target: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Launcher of ``pygan_triton::gradient_penalty``: (loss, norms)."""
    _check("gradient_penalty", grad)
    rows = _as_rows(grad)
    N = rows.shape[0]
    K = rows.numel() // N
    acc = cm.torch_acc_dtype(grad.dtype)
    norms = torch.empty((N,), dtype=acc, device=grad.device)
    loss = torch.empty((), dtype=grad.dtype, device=grad.device)
    chunks = max(1, cm.cdiv(K, ROW_CHUNK))
    block = min(cm.next_pow2(K), BLOCK)
    with cm.device_guard(grad):
        if K > 0:
            partial = torch.empty((N, chunks), dtype=acc, device=grad.device)
            _sumsq_partial_kernel[(N * chunks,)](
                rows, partial, K, chunks, ACC=cm.acc_dtype(grad.dtype), BLOCK=block,
                ROW_CHUNK=max(block, min(ROW_CHUNK, cm.next_pow2(K))),
                num_warps=cm.num_warps(block))
        else:
            partial = torch.zeros((N, chunks), dtype=acc, device=grad.device)
        block_n = min(cm.next_pow2(N), FINAL_BLOCK_N)
        block_k = min(cm.next_pow2(chunks), max(1, cm.TILE // block_n))
        _finish_kernel[(1,)](partial, norms, loss, N, chunks, float(target),
                             ACC=cm.acc_dtype(grad.dtype), BLOCK_N=block_n, BLOCK_K=block_k,
                             num_warps=cm.num_warps(block_n * block_k))
    return loss, norms


def gradient_penalty_bwd(grad_loss: torch.Tensor, grad: torch.Tensor, norms: torch.Tensor,
                         target: float) -> torch.Tensor:
    """Launcher of ``pygan_triton::gradient_penalty_bwd``."""
    return launch_gradient_penalty_bwd(grad_loss, grad, norms, target)


def launch_gradient_penalty_bwd(grad_loss: torch.Tensor, grad: torch.Tensor, norms: torch.Tensor,
                                target: float, *, grad_loss_from_ptr: bool | None = None):
    """The backward launch. A CPU grad_loss is read on the host and any other in the kernel;
    ``grad_loss_from_ptr`` forces the choice (tests use it to run the GPU path under the
    interpreter)."""
    _check("gradient_penalty_bwd", grad)
    if grad_loss.numel() != 1:
        raise ValueError("pygan_triton::gradient_penalty_bwd: grad_loss must be a scalar")
    if (norms.dim() != 1 or norms.shape[0] != grad.shape[0]
            or norms.dtype != cm.torch_acc_dtype(grad.dtype)):
        raise ValueError("pygan_triton::gradient_penalty_bwd: norms must be (N,) in the "
                         "accumulation dtype")
    rows = _as_rows(grad)
    out = torch.empty_like(grad)
    use_out = _batch_outer_dense(out) and out.stride() == rows.stride()
    work = out if use_out else torch.empty_like(rows)
    N = rows.shape[0]
    K = rows.numel() // N
    if K == 0:
        return out
    from_ptr = grad_loss.device.type != "cpu" if grad_loss_from_ptr is None else grad_loss_from_ptr
    if from_ptr:
        if grad_loss.device != grad.device:
            raise ValueError(f"pygan_triton::gradient_penalty_bwd: grad_loss is on "
                             f"{grad_loss.device} but grad is on {grad.device}")
        gl_ptr, gl = grad_loss, 0.0
    else:
        gl_ptr, gl = rows, float(grad_loss.item())   # rows: an unused placeholder pointer
    chunks = max(1, cm.cdiv(K, ROW_CHUNK))
    block = min(cm.next_pow2(K), BLOCK)
    with cm.device_guard(grad):
        _bwd_kernel[(N * chunks,)](
            rows, norms.contiguous(), work, gl_ptr, gl, float(target), N, K, chunks,
            GL_FROM_PTR=from_ptr, ACC=cm.acc_dtype(grad.dtype), BLOCK=block,
            ROW_CHUNK=max(block, min(ROW_CHUNK, cm.next_pow2(K))), num_warps=cm.num_warps(block))
    return cm.finish(out, work)
