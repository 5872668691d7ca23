"""Pixel norm in Triton (the maths of ``pygan.ops.pixel_norm``).

Forward, for every sample n and pixel s of x seen as (N, C, S):

    r[n, s] = 1 / sqrt(mean_c x[n, c, s]^2 + eps)
    y[n, c, s] = x[n, c, s] * r[n, s]

Backward (``pixel_norm_bwd(grad, x, eps)``), with g = grad:

    dx = r * g - r^3 * x * mean_c(g * x)

Gradient order: the forward's derivative is ``pixel_norm_bwd``; the derivative of
``pixel_norm_bwd`` is registered in ``pygan.ops.pixel_norm`` (the op applied again for grad,
plain PyTorch for x), so both orders run through these kernels.

Each program owns BLOCK_S pixels of one sample and all C channels: a [BLOCK_C, BLOCK_S] tile.
When C fits in one channel block (ONE_CHUNK) the tile stays in registers between the reduction and
the write; otherwise both passes loop over channel chunks. Sums are accumulated in float32
(float64 for float64 inputs), grid is one-dimensional over (sample, pixel block).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import _common as cm
from ._common import precise_div, precise_rsqrt, round_to, row_pixels, scalar


@triton.jit
def _pixel_norm_fwd_kernel(
    x_ptr, y_ptr, C, S, SB, NS,
    x_sn, x_sc, x_ss, y_sn, y_sc, y_ss,
    eps: tl.float64,
    ACC: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr, FLAT: tl.constexpr,
    ONE_CHUNK: tl.constexpr,
):
    n, s, s_mask = row_pixels(tl.program_id(0).to(tl.int64), S, SB, NS, BLOCK_S, FLAT)
    x_row = x_ptr + n * x_sn + s * x_ss
    y_row = y_ptr + n * y_sn + s * y_ss
    c = tl.arange(0, BLOCK_C).to(tl.int64)
    e = scalar(eps, ACC)
    if ONE_CHUNK:
        mask = (c < C)[:, None] & s_mask[None, :]
        x = tl.load(x_row[None, :] + c[:, None] * x_sc, mask=mask, other=0.0).to(ACC)
        r = precise_rsqrt(precise_div(tl.sum(x * x, axis=0), scalar(C, ACC)) + e)
        tl.store(y_row[None, :] + c[:, None] * y_sc,
                 round_to(x * r[None, :], y_ptr.dtype.element_ty), mask=mask)
    else:
        sq = tl.full([BLOCK_C, BLOCK_S], 0, ACC)
        for c0 in range(0, C, BLOCK_C):
            cc = c0 + c
            mask = (cc < C)[:, None] & s_mask[None, :]
            x = tl.load(x_row[None, :] + cc[:, None] * x_sc, mask=mask, other=0.0).to(ACC)
            sq += x * x
        r = precise_rsqrt(precise_div(tl.sum(sq, axis=0), scalar(C, ACC)) + e)
        for c0 in range(0, C, BLOCK_C):
            cc = c0 + c
            mask = (cc < C)[:, None] & s_mask[None, :]
            x = tl.load(x_row[None, :] + cc[:, None] * x_sc, mask=mask, other=0.0).to(ACC)
            tl.store(y_row[None, :] + cc[:, None] * y_sc,
                     round_to(x * r[None, :], y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _pixel_norm_bwd_kernel(
    g_ptr, x_ptr, dx_ptr, C, S, SB, NS,
    g_sn, g_sc, g_ss, x_sn, x_sc, x_ss, d_sn, d_sc, d_ss,
    eps: tl.float64,
    ACC: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr, FLAT: tl.constexpr,
    ONE_CHUNK: tl.constexpr,
):
    n, s, s_mask = row_pixels(tl.program_id(0).to(tl.int64), S, SB, NS, BLOCK_S, FLAT)
    g_row = g_ptr + n * g_sn + s * g_ss
    x_row = x_ptr + n * x_sn + s * x_ss
    d_row = dx_ptr + n * d_sn + s * d_ss
    c = tl.arange(0, BLOCK_C).to(tl.int64)
    e = scalar(eps, ACC)
    if ONE_CHUNK:
        mask = (c < C)[:, None] & s_mask[None, :]
        x = tl.load(x_row[None, :] + c[:, None] * x_sc, mask=mask, other=0.0).to(ACC)
        g = tl.load(g_row[None, :] + c[:, None] * g_sc, mask=mask, other=0.0).to(ACC)
        r = precise_rsqrt(precise_div(tl.sum(x * x, axis=0), scalar(C, ACC)) + e)
        k = r * r * r * precise_div(tl.sum(g * x, axis=0), scalar(C, ACC))
        dx = r[None, :] * g - k[None, :] * x
        tl.store(d_row[None, :] + c[:, None] * d_sc, round_to(dx, dx_ptr.dtype.element_ty),
                 mask=mask)
    else:
        sxx = tl.full([BLOCK_C, BLOCK_S], 0, ACC)
        sgx = tl.full([BLOCK_C, BLOCK_S], 0, ACC)
        for c0 in range(0, C, BLOCK_C):
            cc = c0 + c
            mask = (cc < C)[:, None] & s_mask[None, :]
            x = tl.load(x_row[None, :] + cc[:, None] * x_sc, mask=mask, other=0.0).to(ACC)
            g = tl.load(g_row[None, :] + cc[:, None] * g_sc, mask=mask, other=0.0).to(ACC)
            sxx += x * x
            sgx += g * x
        r = precise_rsqrt(precise_div(tl.sum(sxx, axis=0), scalar(C, ACC)) + e)
        k = r * r * r * precise_div(tl.sum(sgx, axis=0), scalar(C, ACC))
        for c0 in range(0, C, BLOCK_C):
            cc = c0 + c
            mask = (cc < C)[:, None] & s_mask[None, :]
            x = tl.load(x_row[None, :] + cc[:, None] * x_sc, mask=mask, other=0.0).to(ACC)
            g = tl.load(g_row[None, :] + cc[:, None] * g_sc, mask=mask, other=0.0).to(ACC)
            dx = r[None, :] * g - k[None, :] * x
            tl.store(d_row[None, :] + cc[:, None] * d_sc, round_to(dx, dx_ptr.dtype.element_ty),
                     mask=mask)


def _check(op: str, x: torch.Tensor) -> None:
    if x.dim() < 2:
        raise ValueError(f"pygan_triton::{op}: x must be (N, C, *spatial), got {tuple(x.shape)}")
    cm.check_float("x", op, x)


def pixel_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    """Launcher of ``pygan_triton::pixel_norm``."""
    _check("pixel_norm", x)
    out = torch.empty_like(x)
    if x.numel() == 0:
        return out
    xin, xv = cm.ncs_input(x)
    work, yv = cm.ncs_output(out)
    b = cm.reduction_rows(xv)
    with cm.device_guard(x):
        _pixel_norm_fwd_kernel[(b.rows,)](
            xin, work, xv.c, xv.s, b.sb, xv.n * xv.s, *xv.strides, *yv.strides, float(eps),
            ACC=cm.acc_dtype(x.dtype), BLOCK_C=b.block_c, BLOCK_S=b.block_s, FLAT=b.flat,
            ONE_CHUNK=xv.c <= b.block_c, num_warps=cm.num_warps(b.block_c * b.block_s))
    return cm.finish(out, work)


def pixel_norm_bwd(grad: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """Launcher of ``pygan_triton::pixel_norm_bwd``."""
    _check("pixel_norm_bwd", x)
    if grad.shape != x.shape or grad.dtype != x.dtype or grad.device != x.device:
        raise ValueError("pygan_triton::pixel_norm_bwd: grad must match x in shape, dtype and "
                         "device")
    out = torch.empty_like(grad)
    if x.numel() == 0:
        return out
    gin, gv = cm.ncs_input(grad)
    xin, xv = cm.ncs_input(x)
    work, dv = cm.ncs_output(out)
    b = cm.reduction_rows(xv)
    with cm.device_guard(x):
        _pixel_norm_bwd_kernel[(b.rows,)](
            gin, xin, work, xv.c, xv.s, b.sb, xv.n * xv.s, *gv.strides, *xv.strides, *dv.strides,
            float(eps), ACC=cm.acc_dtype(x.dtype), BLOCK_C=b.block_c, BLOCK_S=b.block_s,
            FLAT=b.flat, ONE_CHUNK=xv.c <= b.block_c, num_warps=cm.num_warps(b.block_c * b.block_s))
    return cm.finish(out, work)
