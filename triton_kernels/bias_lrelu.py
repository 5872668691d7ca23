"""Bias + leaky ReLU with gains in Triton (the maths of ``pygan.ops.bias_lrelu``).

Forward, on x seen as (N, C, S):

    z = x * scale + bias[c]
    y = gain * leaky_relu(z, negative_slope) = z * (gain if z > 0 else gain * negative_slope)

Backward (``bias_lrelu_bwd(grad, out, ...)``), reading the saved OUTPUT (gain > 0 and
negative_slope >= 0 make out > 0 exactly where z > 0):

    dz = grad * (gain if out > 0 else gain * negative_slope)
    dx = scale * dz
    dbias[c] = sum_{n, s} dz[n, c, s]        (only when bias_grad; else an empty tensor)

Gradient order: ``bias_lrelu_bwd`` is linear in grad, so its own derivative (registered in
``pygan.ops.bias_lrelu``) is this same kernel applied to the incoming gradients: first and
second order both run here.

Programs own [BLOCK_C, BLOCK_S] tiles; the layout's innermost dim (pixels for NCHW, channels
for channels_last) gets the larger share of the tile. The bias gradient is deterministic: each
backward program sums dz over a fixed chunk of (sample, pixel-block) rows into its own row of a
float32 (float64) partial-sum tensor, which torch then sums in a fixed order. No atomics.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import _common as cm
from ._common import lrelu_gain, round_to, row_pixels, scalar


@triton.jit
def _bias_lrelu_fwd_kernel(
    x_ptr, b_ptr, y_ptr, C, S, SB, NS, CB,
    x_sn, x_sc, x_ss, y_sn, y_sc, y_ss,
    scale: tl.float64, pos: tl.float64, neg: tl.float64,
    HAS_BIAS: tl.constexpr, ACC: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr,
    FLAT: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    n, s, s_mask = row_pixels(pid // CB, S, SB, NS, BLOCK_S, FLAT)
    c = (pid % CB) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_mask = c < C
    mask = c_mask[:, None] & s_mask[None, :]
    x = tl.load((x_ptr + n * x_sn + s * x_ss)[None, :] + c[:, None] * x_sc, mask=mask, other=0.0)
    z = x.to(ACC) * scalar(scale, ACC)
    if HAS_BIAS:
        z += tl.load(b_ptr + c, mask=c_mask, other=0.0).to(ACC)[:, None]
    y = lrelu_gain(z, scalar(pos, ACC), scalar(neg, ACC))
    tl.store((y_ptr + n * y_sn + s * y_ss)[None, :] + c[:, None] * y_sc,
             round_to(y, y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _bias_lrelu_bwd_kernel(
    g_ptr, o_ptr, dx_ptr, part_ptr, C, S, SB, NS, CB, ROWS, ROWS_PER_PROGRAM,
    g_sn, g_sc, g_ss, o_sn, o_sc, o_ss, d_sn, d_sc, d_ss,
    scale: tl.float64, pos: tl.float64, neg: tl.float64,
    HAS_DB: tl.constexpr, ACC: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr,
    FLAT: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    cb = pid % CB
    chunk = pid // CB
    c = cb * BLOCK_C + tl.arange(0, BLOCK_C)
    c_mask = c < C
    sc = scalar(scale, ACC)
    p = scalar(pos, ACC)
    q = scalar(neg, ACC)
    db = tl.full([BLOCK_C, BLOCK_S], 0, ACC)
    row0 = chunk * ROWS_PER_PROGRAM
    for i in range(0, tl.minimum(ROWS_PER_PROGRAM, ROWS - row0)):
        n, s, s_mask = row_pixels(row0 + i, S, SB, NS, BLOCK_S, FLAT)
        mask = c_mask[:, None] & s_mask[None, :]
        g = tl.load((g_ptr + n * g_sn + s * g_ss)[None, :] + c[:, None] * g_sc, mask=mask,
                    other=0.0)
        o = tl.load((o_ptr + n * o_sn + s * o_ss)[None, :] + c[:, None] * o_sc, mask=mask,
                    other=0.0)
        dz = g.to(ACC) * tl.where(o.to(ACC) > 0, p, q)
        tl.store((dx_ptr + n * d_sn + s * d_ss)[None, :] + c[:, None] * d_sc,
                 round_to(dz * sc, dx_ptr.dtype.element_ty), mask=mask)
        if HAS_DB:
            db += dz   # masked lanes loaded g = 0, so dz = 0 there
    if HAS_DB:
        tl.store(part_ptr + chunk * C + c, tl.sum(db, axis=1), mask=c_mask)


def check_x_bias(op: str, x: torch.Tensor, bias: torch.Tensor | None) -> None:
    if x.dim() < 2:
        raise ValueError(f"pygan_triton::{op}: x must be (N, C, *spatial), got {tuple(x.shape)}")
    cm.check_float("x", op, x)
    if bias is not None:
        if bias.dim() != 1 or bias.shape[0] != x.shape[1]:
            raise ValueError(f"pygan_triton::{op}: bias must be (C,) with C = {x.shape[1]}, got "
                             f"{tuple(bias.shape)}")
        if bias.dtype != x.dtype or bias.device != x.device:
            raise ValueError(f"pygan_triton::{op}: bias must have x's dtype and device")


def bias_lrelu(x: torch.Tensor, bias: torch.Tensor | None, scale: float, negative_slope: float,
               gain: float) -> torch.Tensor:
    """Launcher of ``pygan_triton::bias_lrelu``."""
    check_x_bias("bias_lrelu", x, bias)
    out = torch.empty_like(x)
    if x.numel() == 0:
        return out
    xin, xv = cm.ncs_input(x)
    work, yv = cm.ncs_output(out)
    r = cm.elementwise_rows(xv)
    cb = cm.cdiv(xv.c, r.block_c)
    b = bias.contiguous() if bias is not None else xin   # xin: an unused placeholder pointer
    with cm.device_guard(x):
        _bias_lrelu_fwd_kernel[(r.rows * cb,)](
            xin, b, work, xv.c, xv.s, r.sb, xv.n * xv.s, cb, *xv.strides, *yv.strides,
            float(scale), float(gain), float(gain) * float(negative_slope),
            HAS_BIAS=bias is not None, ACC=cm.acc_dtype(x.dtype), BLOCK_C=r.block_c,
            BLOCK_S=r.block_s, FLAT=r.flat, num_warps=cm.num_warps(r.block_c * r.block_s))
    return cm.finish(out, work)


def bias_lrelu_bwd(grad: torch.Tensor, out: torch.Tensor, scale: float, negative_slope: float,
                   gain: float, bias_grad: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Launcher of ``pygan_triton::bias_lrelu_bwd``."""
    check_x_bias("bias_lrelu_bwd", out, None)
    if grad.shape != out.shape or grad.dtype != out.dtype or grad.device != out.device:
        raise ValueError("pygan_triton::bias_lrelu_bwd: grad must match out in shape, dtype and "
                         "device")
    dx = torch.empty_like(grad)
    C = grad.shape[1]
    if grad.numel() == 0:
        return dx, grad.new_zeros((C if bias_grad else 0,))
    gin, gv = cm.ncs_input(grad)
    oin, ov = cm.ncs_input(out)
    work, dv = cm.ncs_output(dx)
    r = cm.elementwise_rows(ov)
    cb = cm.cdiv(C, r.block_c)
    # with a bias gradient, each program sums a chunk of rows; without one, a program per row
    chunks, per_chunk = cm.split_rows(r.rows, cb) if bias_grad else (r.rows, 1)
    acc = cm.torch_acc_dtype(grad.dtype)
    # without a bias gradient the partial-sum pointer is never read: gin stands in for it
    partial = torch.empty((chunks, C), dtype=acc, device=grad.device) if bias_grad else gin
    with cm.device_guard(grad):
        _bias_lrelu_bwd_kernel[(chunks * cb,)](
            gin, oin, work, partial, C, ov.s, r.sb, ov.n * ov.s, cb, r.rows, per_chunk,
            *gv.strides, *ov.strides, *dv.strides,
            float(scale), float(gain), float(gain) * float(negative_slope),
            HAS_DB=bias_grad, ACC=cm.acc_dtype(grad.dtype), BLOCK_C=r.block_c,
            BLOCK_S=r.block_s, FLAT=r.flat, num_warps=cm.num_warps(r.block_c * r.block_s))
    db = partial.sum(dim=0).to(grad.dtype) if bias_grad else grad.new_empty((0,))
    return cm.finish(dx, work), db
