"""Minibatch standard deviation in Triton (the maths of ``pygan.ops.minibatch_std``).

With G samples per group and M = N / G groups, sample n = g * M + m is in group m; channels split
into F = num_channels groups of Cf = C / F; x is seen as (N, C, S), S = H * W. The sum of squared
deviations divides by D = G - 1 when ``unbiased`` (as ``torch.std``; G >= 2), else D = G; the
kernels take D as a runtime float (no compile-time variant per value).

Forward:

    mu[m, c, s]    = mean_g x[g*M+m, c, s]                       (always / G)
    sigma[m, c, s] = sqrt(sum_g (x[g*M+m, c, s] - mu)^2 / D + eps)
    stat[m, f]     = mean_{c in f, s} sigma[m, c, s]
    out = cat(x, stat[n mod M, f] over every pixel)            (N, C + F, H, W)

Backward (``minibatch_std_bwd(grad, x, ...)``):

    k[m, f] = sum_{g, s} grad[g*M+m, C+f, s] / (Cf * S)
    dx[g*M+m, c, s] = grad[g*M+m, c, s] + k[m, f(c)] / D * (x - mu) / sigma

Gradient order: first order here; the ``_bwd`` op's derivative is plain PyTorch in
``pygan.ops.minibatch_std`` (it is linear in grad), so second order works on this backend.

Kernels: (1) partial sums of sigma (forward) or of the appended channels' gradient (backward),
each program summing a fixed chunk of one (m, f) reduction; torch adds the partials of each
(m, f) in a fixed order, so results are deterministic without atomics. (2) one elementwise pass
that writes the output (x copied, the statistic broadcast) or dx. Accumulation in float32
(float64 for float64 inputs); one-dimensional grids.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import _common as cm
from ._common import precise_div, precise_sqrt, round_to, row_pixels, scalar

#: Elements per block in the (m, f) reductions.
REDUCE_BLOCK = 1024


@triton.jit
def _sigma_partial_kernel(
    x_ptr, part_ptr, M, F, G, Cf, S, J, K, BLOCKS_PER_PROGRAM,
    x_sn, x_sc, x_ss,
    eps: tl.float64, D: tl.float64,
    ACC: tl.constexpr, BLOCK: tl.constexpr, CH_INNER: tl.constexpr,
):
    """part[(m*F + f)*K + k] = sum of sigma over the k-th chunk of (c in f, s)."""
    pid = tl.program_id(0).to(tl.int64)
    k = pid % K
    mf = pid // K
    m = mf // F
    f = mf % F
    g_step = scalar(M, tl.int64) * x_sn     # from sample g*M+m to (g+1)*M+m (64-bit: M*x_sn can pass 2^31)
    inv_g = precise_div(scalar(1.0, ACC), scalar(G, ACC))
    inv_d = precise_div(scalar(1.0, ACC), scalar(D, ACC))
    e = scalar(eps, ACC)
    total = tl.full([BLOCK], 0, ACC)
    j0 = k * BLOCKS_PER_PROGRAM * BLOCK
    for b in range(0, BLOCKS_PER_PROGRAM):
        j = j0 + b * BLOCK + tl.arange(0, BLOCK)
        mask = j < J
        if CH_INNER:   # channels_last: walk channels fastest, so loads are contiguous
            cl = j % Cf
            s = j // Cf
        else:
            cl = j // S
            s = j % S
        ptrs = x_ptr + m * x_sn + (f * Cf + cl) * x_sc + s * x_ss
        mean = tl.full([BLOCK], 0, ACC)
        p = ptrs
        for g in range(0, G):
            mean += tl.load(p, mask=mask, other=0.0).to(ACC)
            p += g_step
        mean = mean * inv_g
        var = tl.full([BLOCK], 0, ACC)
        p = ptrs
        for g in range(0, G):
            d = tl.load(p, mask=mask, other=0.0).to(ACC) - mean
            var += d * d
            p += g_step
        total += tl.where(mask, precise_sqrt(var * inv_d + e), 0.0)
    tl.store(part_ptr + pid, tl.sum(total, axis=0))


@triton.jit
def _write_out_kernel(
    x_ptr, stat_ptr, out_ptr, C, F, M, S, SB, NS, CB,
    x_sn, x_sc, x_ss, o_sn, o_sc, o_ss,
    BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr, FLAT: tl.constexpr,
):
    """out[:, :C] = x; out[n, C + f, :] = stat[n mod M, f]."""
    pid = tl.program_id(0).to(tl.int64)
    n, s, s_mask = row_pixels(pid // CB, S, SB, NS, BLOCK_S, FLAT)
    c = (pid % CB) * BLOCK_C + tl.arange(0, BLOCK_C)
    is_x = c < C
    is_stat = (c >= C) & (c < C + F)
    x = tl.load((x_ptr + n * x_sn + s * x_ss)[None, :] + c[:, None] * x_sc,
                mask=is_x[:, None] & s_mask[None, :], other=0.0)
    stat = tl.load(stat_ptr + ((n % M) * F)[None, :] + (c - C)[:, None],
                   mask=is_stat[:, None] & s_mask[None, :], other=0.0)
    value = tl.where(is_x[:, None], x, stat)
    tl.store((out_ptr + n * o_sn + s * o_ss)[None, :] + c[:, None] * o_sc, value,
             mask=(is_x | is_stat)[:, None] & s_mask[None, :])


@triton.jit
def _grad_stat_partial_kernel(
    g_ptr, part_ptr, M, F, C, S, J, K, BLOCKS_PER_PROGRAM,
    g_sn, g_sc, g_ss,
    ACC: tl.constexpr, BLOCK: tl.constexpr,
):
    """part[(m*F + f)*K + k] = sum of grad[g*M+m, C+f, s] over the k-th chunk of (g, s)."""
    pid = tl.program_id(0).to(tl.int64)
    k = pid % K
    mf = pid // K
    m = mf // F
    f = mf % F
    total = tl.full([BLOCK], 0, ACC)
    j0 = k * BLOCKS_PER_PROGRAM * BLOCK
    for b in range(0, BLOCKS_PER_PROGRAM):
        j = j0 + b * BLOCK + tl.arange(0, BLOCK)
        mask = j < J
        gi = j // S
        s = j % S
        ptrs = g_ptr + (gi * M + m) * g_sn + (C + f) * g_sc + s * g_ss
        total += tl.load(ptrs, mask=mask, other=0.0).to(ACC)
    tl.store(part_ptr + pid, tl.sum(total, axis=0))


@triton.jit
def _bwd_kernel(
    g_ptr, x_ptr, k_ptr, dx_ptr, M, G, F, Cf, C, S, SB, MS, CB,
    g_sn, g_sc, g_ss, x_sn, x_sc, x_ss, d_sn, d_sc, d_ss,
    eps: tl.float64, D: tl.float64,
    ACC: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr, FLAT: tl.constexpr,
):
    """dx for a [BLOCK_C, BLOCK_S] tile of (c, pixel of group m), all G samples of the group."""
    pid = tl.program_id(0).to(tl.int64)
    m, s, s_mask = row_pixels(pid // CB, S, SB, MS, BLOCK_S, FLAT)   # rows over groups m
    c = (pid % CB) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_mask = c < C
    mask = c_mask[:, None] & s_mask[None, :]
    inv_g = precise_div(scalar(1.0, ACC), scalar(G, ACC))
    inv_d = precise_div(scalar(1.0, ACC), scalar(D, ACC))
    kc = tl.load(k_ptr + (m * F)[None, :] + (c // Cf)[:, None], mask=mask, other=0.0).to(ACC)
    x_ptrs = (x_ptr + m * x_sn + s * x_ss)[None, :] + c[:, None] * x_sc
    g_ptrs = (g_ptr + m * g_sn + s * g_ss)[None, :] + c[:, None] * g_sc
    d_ptrs = (dx_ptr + m * d_sn + s * d_ss)[None, :] + c[:, None] * d_sc
    # sample g*M+m of the group is g steps of M samples from sample m
    x_step = scalar(M, tl.int64) * x_sn     # 64-bit: M * x_sn can pass 2^31
    mean = tl.full([BLOCK_C, BLOCK_S], 0, ACC)
    xp = x_ptrs
    for g in range(0, G):
        mean += tl.load(xp, mask=mask, other=0.0).to(ACC)
        xp += x_step
    mean = mean * inv_g
    var = tl.full([BLOCK_C, BLOCK_S], 0, ACC)
    xp = x_ptrs
    for g in range(0, G):
        d = tl.load(xp, mask=mask, other=0.0).to(ACC) - mean
        var += d * d
        xp += x_step
    var = tl.where(mask, var, 1.0)   # masked-off lanes: no 0/0 when eps = 0 (never stored anyway)
    coef = precise_div(kc * inv_d, precise_sqrt(var * inv_d + scalar(eps, ACC)))
    xp = x_ptrs
    gp = g_ptrs
    dp = d_ptrs
    for g in range(0, G):
        x = tl.load(xp, mask=mask, other=0.0).to(ACC)
        gr = tl.load(gp, mask=mask, other=0.0).to(ACC)
        tl.store(dp, round_to(gr + coef * (x - mean), dx_ptr.dtype.element_ty), mask=mask)
        xp += x_step
        gp += scalar(M, tl.int64) * g_sn
        dp += scalar(M, tl.int64) * d_sn


def _check(op: str, x: torch.Tensor, G: int, F: int, unbiased: bool) -> float:
    """Check the arguments; return D, the divisor of the sum of squared deviations, as a float."""
    if x.dim() != 4:
        raise ValueError(f"pygan_triton::{op}: x must be (N, C, H, W), got {tuple(x.shape)}")
    cm.check_float("x", op, x)
    if G < 1 or x.shape[0] % G:
        raise ValueError(f"pygan_triton::{op}: N={x.shape[0]} is not divisible by group_size={G}")
    if F < 1 or x.shape[1] % F:
        raise ValueError(f"pygan_triton::{op}: C={x.shape[1]} is not divisible by num_channels={F}")
    if unbiased and G < 2:
        raise ValueError(f"pygan_triton::{op}: unbiased=True needs group_size >= 2, got "
                         f"group_size={G} (the unbiased variance of one sample is undefined)")
    return float(G - 1 if unbiased else G)


def _reduction_split(groups: int, length: int) -> tuple[int, int, int]:
    """(BLOCK, K chunks per reduction, blocks per chunk) for `groups` reductions of `length`."""
    block = min(cm.next_pow2(length), REDUCE_BLOCK)
    blocks = cm.cdiv(length, block)
    k, per = cm.split_rows(blocks, groups)
    return block, k, per


def minibatch_std(x: torch.Tensor, group_size: int, num_channels: int, eps: float,
                  unbiased: bool = False) -> torch.Tensor:
    """Launcher of ``pygan_triton::minibatch_std``."""
    G, F = int(group_size), int(num_channels)
    D = _check("minibatch_std", x, G, F, bool(unbiased))
    N, C, H, W = x.shape
    out = cm.empty_in_layout_of((N, C + F, H, W), x)
    if out.numel() == 0:
        return out
    xin, xv = cm.ncs_input(x)
    ov = cm.as_ncs(out)
    M, Cf, S = N // G, C // F, xv.s
    acc = cm.torch_acc_dtype(x.dtype)
    if x.numel():
        block, K, per = _reduction_split(M * F, Cf * S)
        partial = torch.empty((M * F, K), dtype=acc, device=x.device)
        with cm.device_guard(x):
            _sigma_partial_kernel[(M * F * K,)](
                xin, partial, M, F, G, Cf, S, Cf * S, K, per, *xv.strides, float(eps), D,
                ACC=cm.acc_dtype(x.dtype), BLOCK=block, CH_INNER=xv.channels_inner(),
                num_warps=cm.num_warps(block))
        stat = (partial.sum(dim=1) / (Cf * S)).to(x.dtype)
    else:   # C = 0: the statistic is a mean over nothing, as in the reference
        stat = torch.full((M * F,), float("nan"), dtype=x.dtype, device=x.device)
    r = cm.elementwise_rows(ov)
    cb = cm.cdiv(C + F, r.block_c)
    with cm.device_guard(x):
        _write_out_kernel[(r.rows * cb,)](
            xin, stat, out, C, F, M, S, r.sb, N * S, cb, *xv.strides, *ov.strides,
            BLOCK_C=r.block_c, BLOCK_S=r.block_s, FLAT=r.flat,
            num_warps=cm.num_warps(r.block_c * r.block_s))
    return out


def minibatch_std_bwd(grad: torch.Tensor, x: torch.Tensor, group_size: int, num_channels: int,
                      eps: float, unbiased: bool = False) -> torch.Tensor:
    """Launcher of ``pygan_triton::minibatch_std_bwd``."""
    G, F = int(group_size), int(num_channels)
    D = _check("minibatch_std_bwd", x, G, F, bool(unbiased))
    N, C, H, W = x.shape
    if (tuple(grad.shape) != (N, C + F, H, W) or grad.dtype != x.dtype
            or grad.device != x.device):
        raise ValueError("pygan_triton::minibatch_std_bwd: grad must be (N, C + num_channels, "
                         "H, W) with x's dtype and device")
    out = torch.empty_like(x)
    if x.numel() == 0:
        return out
    xin, xv = cm.ncs_input(x)
    gin, gv = cm.ncs_input(grad)
    work, dv = cm.ncs_output(out)
    M, Cf, S = N // G, C // F, xv.s
    acc = cm.torch_acc_dtype(x.dtype)
    block, K, per = _reduction_split(M * F, G * S)
    partial = torch.empty((M * F, K), dtype=acc, device=x.device)
    r = cm.elementwise_rows(xv._replace(n=M))   # rows over (group, pixel); G samples each
    cb = cm.cdiv(C, r.block_c)
    with cm.device_guard(x):
        _grad_stat_partial_kernel[(M * F * K,)](
            gin, partial, M, F, C, S, G * S, K, per, *gv.strides,
            ACC=cm.acc_dtype(x.dtype), BLOCK=block, num_warps=cm.num_warps(block))
        k = partial.sum(dim=1) / (Cf * S)
        _bwd_kernel[(r.rows * cb,)](
            gin, xin, k, work, M, G, F, Cf, C, S, r.sb, M * S, cb,
            *gv.strides, *xv.strides, *dv.strides, float(eps), D, ACC=cm.acc_dtype(x.dtype),
            BLOCK_C=r.block_c, BLOCK_S=r.block_s, FLAT=r.flat,
            num_warps=cm.num_warps(r.block_c * r.block_s))
    return cm.finish(out, work)
