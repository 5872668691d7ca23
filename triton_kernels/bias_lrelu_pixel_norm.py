"""Bias + leaky ReLU + pixel norm fused in Triton (the maths of
``pygan.ops.bias_lrelu_pixel_norm``).

Forward, on x seen as (N, C, S), with pos = gain and neg = gain * negative_slope:

    a = (x * scale + bias[c]) * (pos if z > 0 else neg)
    r[n, s] = 1 / sqrt(mean_c a^2 + eps)
    y = a * r

Backward (``bias_lrelu_pixel_norm_bwd(grad, x, bias, ...)``); a is recomputed from x, never
stored:

    da = r * g - r^3 * a * mean_c(g * a)
    dz = da * (pos if a > 0 else neg)
    dx = scale * dz;    dbias[c] = sum_{n, s} dz       (only when bias_grad)

Gradient order: first order here; the ``_bwd`` op's derivative (registered in
``pygan.ops.bias_lrelu_pixel_norm``) chains the bias_lrelu and pixel_norm ops of the same
backend, so second order runs on Triton kernels too.

Programs own BLOCK_S pixels of one sample and all channels (a [BLOCK_C, BLOCK_S] tile; more than
MAX_BLOCK_C channels loop over chunks). The backward's programs walk a fixed chunk of pixel-block
rows; the bias partial sums stay in registers over the chunk and are written once per program
(when C > MAX_BLOCK_C: once per row block and channel chunk), then torch adds them in a fixed
order: deterministic, no atomics, no read-modify-write. Accumulation in float32 (float64 for
float64 inputs).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import _common as cm
from ._common import lrelu_gain, precise_div, precise_rsqrt, round_to, row_pixels, scalar
from .bias_lrelu import check_x_bias


@cm.device_function
def _act(x_ptrs, b_ptr, c, mask, c_mask, scale, pos, neg, HAS_BIAS: tl.constexpr,
         ACC: tl.constexpr):
    """a = gain * leaky_relu(x * scale + bias[c]) for a [BLOCK_C, BLOCK_S] tile (0 where masked)."""
    z = tl.load(x_ptrs, mask=mask, other=0.0).to(ACC) * scale
    if HAS_BIAS:
        z += tl.load(b_ptr + c, mask=c_mask, other=0.0).to(ACC)[:, None]
    return tl.where(mask, lrelu_gain(z, pos, neg), 0.0)


@triton.jit
def _fused_fwd_kernel(
    x_ptr, b_ptr, y_ptr, C, S, SB, NS,
    x_sn, x_sc, x_ss, y_sn, y_sc, y_ss,
    scale: tl.float64, pos: tl.float64, neg: tl.float64, eps: tl.float64,
    HAS_BIAS: tl.constexpr, ACC: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr,
    FLAT: tl.constexpr, ONE_CHUNK: tl.constexpr,
):
    n, s, s_mask = row_pixels(tl.program_id(0).to(tl.int64), S, SB, NS, BLOCK_S, FLAT)
    x_row = x_ptr + n * x_sn + s * x_ss
    y_row = y_ptr + n * y_sn + s * y_ss
    c = tl.arange(0, BLOCK_C).to(tl.int64)
    sc = scalar(scale, ACC)
    p = scalar(pos, ACC)
    q = scalar(neg, ACC)
    e = scalar(eps, ACC)
    if ONE_CHUNK:
        c_mask = c < C
        mask = c_mask[:, None] & s_mask[None, :]
        a = _act(x_row[None, :] + c[:, None] * x_sc, b_ptr, c, mask, c_mask, sc, p, q,
                 HAS_BIAS, ACC)
        r = precise_rsqrt(precise_div(tl.sum(a * a, axis=0), scalar(C, ACC)) + e)
        tl.store(y_row[None, :] + c[:, None] * y_sc,
                 round_to(a * r[None, :], y_ptr.dtype.element_ty), mask=mask)
    else:
        sq = tl.full([BLOCK_C, BLOCK_S], 0, ACC)
        for c0 in range(0, C, BLOCK_C):
            cc = c0 + c
            c_mask = cc < C
            mask = c_mask[:, None] & s_mask[None, :]
            a = _act(x_row[None, :] + cc[:, None] * x_sc, b_ptr, cc, mask, c_mask, sc, p, q,
                     HAS_BIAS, ACC)
            sq += a * a
        r = precise_rsqrt(precise_div(tl.sum(sq, axis=0), scalar(C, ACC)) + e)
        for c0 in range(0, C, BLOCK_C):
            cc = c0 + c
            c_mask = cc < C
            mask = c_mask[:, None] & s_mask[None, :]
            a = _act(x_row[None, :] + cc[:, None] * x_sc, b_ptr, cc, mask, c_mask, sc, p, q,
                     HAS_BIAS, ACC)
            tl.store(y_row[None, :] + cc[:, None] * y_sc,
                     round_to(a * r[None, :], y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _fused_bwd_kernel(
    g_ptr, x_ptr, b_ptr, dx_ptr, part_ptr, C, S, SB, NS, ROWS, ROWS_PER_PROGRAM,
    g_sn, g_sc, g_ss, x_sn, x_sc, x_ss, d_sn, d_sc, d_ss,
    scale: tl.float64, pos: tl.float64, neg: tl.float64, eps: tl.float64,
    HAS_BIAS: tl.constexpr, HAS_DB: tl.constexpr, ACC: tl.constexpr, BLOCK_C: tl.constexpr,
    BLOCK_S: tl.constexpr, FLAT: tl.constexpr, ONE_CHUNK: tl.constexpr,
):
    chunk = tl.program_id(0).to(tl.int64)
    c = tl.arange(0, BLOCK_C).to(tl.int64)
    sc = scalar(scale, ACC)
    p = scalar(pos, ACC)
    q = scalar(neg, ACC)
    e = scalar(eps, ACC)
    inv_c = precise_div(scalar(1.0, ACC), scalar(C, ACC))
    # ONE_CHUNK: the bias partial sums stay in registers, one per channel: a [BLOCK_C, BLOCK_S]
    # accumulator made BLOCK_C=512 spill on sm_90 (16 B stack in ProGAN's 512-channel layers)
    db = tl.full([BLOCK_C], 0, ACC)
    row0 = chunk * ROWS_PER_PROGRAM
    for i in range(0, tl.minimum(ROWS_PER_PROGRAM, ROWS - row0)):
        n, s, s_mask = row_pixels(row0 + i, S, SB, NS, BLOCK_S, FLAT)
        x_row = x_ptr + n * x_sn + s * x_ss
        g_row = g_ptr + n * g_sn + s * g_ss
        d_row = dx_ptr + n * d_sn + s * d_ss
        if ONE_CHUNK:
            c_mask = c < C
            mask = c_mask[:, None] & s_mask[None, :]
            a = _act(x_row[None, :] + c[:, None] * x_sc, b_ptr, c, mask, c_mask, sc, p, q,
                     HAS_BIAS, ACC)
            g = tl.load(g_row[None, :] + c[:, None] * g_sc, mask=mask, other=0.0).to(ACC)
            r = precise_rsqrt(tl.sum(a * a, axis=0) * inv_c + e)
            k = r * r * r * (tl.sum(g * a, axis=0) * inv_c)
            dz = (r[None, :] * g - k[None, :] * a) * tl.where(a > 0, p, q)
            tl.store(d_row[None, :] + c[:, None] * d_sc, round_to(dz * sc, dx_ptr.dtype.element_ty),
                     mask=mask)
            if HAS_DB:
                # masked lanes: dz is 0, or NaN where a masked pixel's r = 1/sqrt(0 + eps = 0)
                db += tl.sum(tl.where(mask, dz, 0.0), axis=1)
        else:
            saa = tl.full([BLOCK_C, BLOCK_S], 0, ACC)
            sga = tl.full([BLOCK_C, BLOCK_S], 0, ACC)
            for c0 in range(0, C, BLOCK_C):
                cc = c0 + c
                c_mask = cc < C
                mask = c_mask[:, None] & s_mask[None, :]
                a = _act(x_row[None, :] + cc[:, None] * x_sc, b_ptr, cc, mask, c_mask, sc, p, q,
                         HAS_BIAS, ACC)
                g = tl.load(g_row[None, :] + cc[:, None] * g_sc, mask=mask, other=0.0).to(ACC)
                saa += a * a
                sga += g * a
            r = precise_rsqrt(tl.sum(saa, axis=0) * inv_c + e)
            k = r * r * r * (tl.sum(sga, axis=0) * inv_c)
            for c0 in range(0, C, BLOCK_C):
                cc = c0 + c
                c_mask = cc < C
                mask = c_mask[:, None] & s_mask[None, :]
                a = _act(x_row[None, :] + cc[:, None] * x_sc, b_ptr, cc, mask, c_mask, sc, p, q,
                         HAS_BIAS, ACC)
                g = tl.load(g_row[None, :] + cc[:, None] * g_sc, mask=mask, other=0.0).to(ACC)
                dz = (r[None, :] * g - k[None, :] * a) * tl.where(a > 0, p, q)
                tl.store(d_row[None, :] + cc[:, None] * d_sc,
                         round_to(dz * sc, dx_ptr.dtype.element_ty), mask=mask)
                if HAS_DB:   # one row of partial sums per row block (no read-modify-write)
                    tl.store(part_ptr + (row0 + i) * C + cc,
                             tl.sum(tl.where(mask, dz, 0.0), axis=1), mask=c_mask)
    if HAS_DB and ONE_CHUNK:
        tl.store(part_ptr + chunk * C + c, db, mask=c < C)


def bias_lrelu_pixel_norm(x: torch.Tensor, bias: torch.Tensor | None, scale: float,
                          negative_slope: float, gain: float, eps: float) -> torch.Tensor:
    """Launcher of ``pygan_triton::bias_lrelu_pixel_norm``."""
    check_x_bias("bias_lrelu_pixel_norm", x, bias)
    out = torch.empty_like(x)
    if x.numel() == 0:
        return out
    xin, xv = cm.ncs_input(x)
    work, yv = cm.ncs_output(out)
    r = cm.reduction_rows(xv)
    b = bias.contiguous() if bias is not None else xin   # xin: an unused placeholder pointer
    with cm.device_guard(x):
        _fused_fwd_kernel[(r.rows,)](
            xin, b, work, xv.c, xv.s, r.sb, xv.n * xv.s, *xv.strides, *yv.strides,
            float(scale), float(gain), float(gain) * float(negative_slope), float(eps),
            HAS_BIAS=bias is not None, ACC=cm.acc_dtype(x.dtype), BLOCK_C=r.block_c,
            BLOCK_S=r.block_s, FLAT=r.flat, ONE_CHUNK=xv.c <= r.block_c,
            num_warps=cm.num_warps(r.block_c * r.block_s))
    return cm.finish(out, work)


def bias_lrelu_pixel_norm_bwd(grad: torch.Tensor, x: torch.Tensor, bias: torch.Tensor | None,
                              scale: float, negative_slope: float, gain: float, eps: float,
                              bias_grad: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Launcher of ``pygan_triton::bias_lrelu_pixel_norm_bwd``."""
    check_x_bias("bias_lrelu_pixel_norm_bwd", x, bias)
    if grad.shape != x.shape or grad.dtype != x.dtype or grad.device != x.device:
        raise ValueError("pygan_triton::bias_lrelu_pixel_norm_bwd: grad must match x in shape, "
                         "dtype and device")
    dx = torch.empty_like(grad)
    C = x.shape[1]
    if x.numel() == 0:
        return dx, x.new_zeros((C if bias_grad else 0,))
    gin, gv = cm.ncs_input(grad)
    xin, xv = cm.ncs_input(x)
    work, dv = cm.ncs_output(dx)
    r = cm.reduction_rows(xv)
    one_chunk = C <= r.block_c
    chunks, per_chunk = cm.split_rows(r.rows, 1) if bias_grad else (r.rows, 1)
    acc = cm.torch_acc_dtype(x.dtype)
    # bias partial sums: one row per program when all channels fit in one block (kept in
    # registers over the program's rows), else one row per row block; without a bias gradient,
    # xin stands in for the unused pointer
    partial = torch.empty((chunks if one_chunk else r.rows, C), dtype=acc, device=x.device) \
        if bias_grad else xin
    b = bias.contiguous() if bias is not None else xin
    with cm.device_guard(x):
        _fused_bwd_kernel[(chunks,)](
            gin, xin, b, work, partial, C, xv.s, r.sb, xv.n * xv.s, r.rows, per_chunk,
            *gv.strides, *xv.strides, *dv.strides,
            float(scale), float(gain), float(gain) * float(negative_slope), float(eps),
            HAS_BIAS=bias is not None, HAS_DB=bias_grad, ACC=cm.acc_dtype(x.dtype),
            BLOCK_C=r.block_c, BLOCK_S=r.block_s, FLAT=r.flat, ONE_CHUNK=one_chunk,
            num_warps=cm.num_warps(r.block_c * r.block_s))
    db = partial.sum(dim=0).to(x.dtype) if bias_grad else x.new_empty((0,))
    return cm.finish(dx, work), db
