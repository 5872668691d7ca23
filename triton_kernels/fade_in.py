"""Progressive-growing fade-in in Triton (the maths of ``pygan.ops.fade_in``).

Forward, with up = 2x nearest-neighbour upsampling (SHIFT = 1) or the identity (SHIFT = 0):

    out[n, c, h, w] = alpha * high[n, c, h, w] + (1 - alpha) * low[n, c, h >> SHIFT, w >> SHIFT]

Backward (``fade_in_bwd(grad, alpha, upsampled)`` -> (d_low, d_high)):

    d_high = alpha * grad
    d_low[n, c, y, x] = (1 - alpha) * sum of grad over the 2x2 block (2y.., 2x..) (or grad itself)

Gradient order: ``fade_in_bwd`` is linear in grad and its transpose is ``fade_in`` (registered
in ``pygan.ops.fade_in``), so first and second order both run on these kernels. The gradient with
respect to a tensor alpha is plain PyTorch there.

alpha is a 0-dim tensor. On the CPU it is read on the host (``.item()``) and passed as a float64
argument; anywhere else (a CUDA tensor) its pointer goes to the kernel and it is read there, so
no launch waits for the device.

Each program handles BLOCK elements of the index space (of the output in the forward, of d_low in
the backward) in the memory order of that tensor: channels fastest when it is channels_last,
else width fastest. 64-bit indices, one-dimensional grid.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import _common as cm
from ._common import round_to, scalar

#: Most elements per program (a program handles one block of the index space).
MAX_BLOCK = 4096


@cm.device_function
def _alpha_pair(alpha_ptr, alpha, ALPHA_FROM_PTR: tl.constexpr, ACC: tl.constexpr):
    """(alpha, 1 - alpha) in ACC, 1 - alpha computed in float64 like the C++ kernels."""
    if ALPHA_FROM_PTR:
        a = tl.load(alpha_ptr).to(tl.float64)
    else:
        a = scalar(alpha, tl.float64)
    return a.to(ACC), (1.0 - a).to(ACC)


@cm.device_function
def _nchw_index(i, C, H, W, CL: tl.constexpr):
    """Split a flat index in memory order (channels_last if CL, else NCHW) into (n, c, h, w)."""
    if CL:
        c = i % C
        t = i // C
        w = t % W
        t = t // W
        h = t % H
        n = t // H
    else:
        w = i % W
        t = i // W
        h = t % H
        t = t // H
        c = t % C
        n = t // C
    return n, c, h, w


@triton.jit
def _fade_in_fwd_kernel(
    low_ptr, high_ptr, out_ptr, alpha_ptr, alpha: tl.float64, TOTAL, C, H, W,
    l_sn, l_sc, l_sh, l_sw, h_sn, h_sc, h_sh, h_sw, o_sn, o_sc, o_sh, o_sw,
    SHIFT: tl.constexpr, CL: tl.constexpr, ALPHA_FROM_PTR: tl.constexpr, ACC: tl.constexpr,
    BLOCK: tl.constexpr,
):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = i < TOTAL
    n, c, h, w = _nchw_index(i, C, H, W, CL)
    a, b = _alpha_pair(alpha_ptr, alpha, ALPHA_FROM_PTR, ACC)
    hv = tl.load(high_ptr + n * h_sn + c * h_sc + h * h_sh + w * h_sw, mask=mask, other=0.0)
    lv = tl.load(low_ptr + n * l_sn + c * l_sc + (h >> SHIFT) * l_sh + (w >> SHIFT) * l_sw,
                 mask=mask, other=0.0)
    out = a * hv.to(ACC) + b * lv.to(ACC)
    tl.store(out_ptr + n * o_sn + c * o_sc + h * o_sh + w * o_sw,
             round_to(out, out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _fade_in_bwd_kernel(
    g_ptr, dl_ptr, dh_ptr, alpha_ptr, alpha: tl.float64, TOTAL, C, H, W,
    g_sn, g_sc, g_sh, g_sw, l_sn, l_sc, l_sh, l_sw, h_sn, h_sc, h_sh, h_sw,
    SHIFT: tl.constexpr, CL: tl.constexpr, ALPHA_FROM_PTR: tl.constexpr, ACC: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """Indices run over d_low (H, W are its sizes); each element reads its 2x2 (or 1x1) block."""
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = i < TOTAL
    n, c, y, x = _nchw_index(i, C, H, W, CL)
    a, b = _alpha_pair(alpha_ptr, alpha, ALPHA_FROM_PTR, ACC)
    total = tl.full([BLOCK], 0, ACC)
    for dy in tl.static_range(0, 1 << SHIFT):
        for dx in tl.static_range(0, 1 << SHIFT):
            yy = (y << SHIFT) + dy
            xx = (x << SHIFT) + dx
            g = tl.load(g_ptr + n * g_sn + c * g_sc + yy * g_sh + xx * g_sw, mask=mask,
                        other=0.0).to(ACC)
            tl.store(dh_ptr + n * h_sn + c * h_sc + yy * h_sh + xx * h_sw,
                     round_to(a * g, dh_ptr.dtype.element_ty), mask=mask)
            total += g
    tl.store(dl_ptr + n * l_sn + c * l_sc + y * l_sh + x * l_sw,
             round_to(b * total, dl_ptr.dtype.element_ty), mask=mask)


def _channels_last_order(t: torch.Tensor) -> bool:
    """Walk channels fastest (as the C++ kernels do) when t's channel stride is 1."""
    return t.shape[1] > 1 and t.stride(1) == 1 and t.shape[2] * t.shape[3] > 1


def _alpha_args(alpha: torch.Tensor, like: torch.Tensor, op: str, alpha_from_ptr: bool | None):
    """(pointer tensor, float value, read-from-pointer flag) for a 0-dim alpha."""
    if alpha.dim() != 0 or not alpha.is_floating_point():
        raise ValueError(f"pygan_triton::{op}: alpha must be a 0-dim floating-point tensor")
    if alpha_from_ptr is None:
        alpha_from_ptr = alpha.device.type != "cpu"
    if alpha_from_ptr:
        if alpha.device != like.device:
            raise ValueError(f"pygan_triton::{op}: alpha is on {alpha.device} but the tensors are "
                             f"on {like.device}; pass a CPU tensor or one on their device")
        return alpha, 0.0, True
    if alpha.device.type != "cpu":
        raise ValueError(f"pygan_triton::{op}: alpha must be on the CPU to be read on the host")
    return like, float(alpha.item()), False   # like: an unused placeholder pointer


def fade_in(low: torch.Tensor, high: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Launcher of ``pygan_triton::fade_in``."""
    return launch_fade_in(low, high, alpha)


def fade_in_bwd(grad: torch.Tensor, alpha: torch.Tensor,
                upsampled: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Launcher of ``pygan_triton::fade_in_bwd``: (d_low, d_high)."""
    return launch_fade_in_bwd(grad, alpha, upsampled)


def launch_fade_in(low: torch.Tensor, high: torch.Tensor, alpha: torch.Tensor, *,
                   alpha_from_ptr: bool | None = None) -> torch.Tensor:
    """The forward launch. ``alpha_from_ptr`` forces where alpha is read (tests use it to run the
    GPU path, alpha read in the kernel, under the interpreter); by default a CPU alpha is read
    on the host and any other in the kernel."""
    if high.dim() != 4 or low.dim() != 4 or low.dtype != high.dtype or low.device != high.device:
        raise ValueError("pygan_triton::fade_in: low and high must be (N, C, H, W) tensors of one "
                         "dtype and device")
    cm.check_float("high", "fade_in", high)
    N, C, H, W = high.shape
    up = low.shape != high.shape
    if up and tuple(low.shape) != (N, C, H // 2, W // 2):
        raise ValueError(f"pygan_triton::fade_in: low must be high's shape or half its spatial "
                         f"size; got {tuple(low.shape)} and {tuple(high.shape)}")
    ptr, value, from_ptr = _alpha_args(alpha, high, "fade_in", alpha_from_ptr)
    out = torch.empty_like(high)
    total = out.numel()
    if total == 0:
        return out
    block = min(cm.next_pow2(total), MAX_BLOCK)
    with cm.device_guard(high):
        _fade_in_fwd_kernel[(cm.cdiv(total, block),)](
            low, high, out, ptr, value, total, C, H, W,
            *low.stride(), *high.stride(), *out.stride(),
            SHIFT=1 if up else 0, CL=_channels_last_order(out), ALPHA_FROM_PTR=from_ptr,
            ACC=cm.acc_dtype(high.dtype), BLOCK=block, num_warps=cm.num_warps(block))
    return out


def launch_fade_in_bwd(grad: torch.Tensor, alpha: torch.Tensor, upsampled: bool, *,
                       alpha_from_ptr: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The backward launch; ``alpha_from_ptr`` as in :func:`launch_fade_in`."""
    if grad.dim() != 4:
        raise ValueError("pygan_triton::fade_in_bwd: grad must be an (N, C, H, W) tensor")
    cm.check_float("grad", "fade_in_bwd", grad)
    N, C, H, W = grad.shape
    shift = 1 if upsampled else 0
    h, w = H >> shift, W >> shift
    ptr, value, from_ptr = _alpha_args(alpha, grad, "fade_in_bwd", alpha_from_ptr)
    d_high = torch.empty_like(grad)
    d_low = cm.empty_in_layout_of((N, C, h, w), grad)
    total = d_low.numel()
    if grad.numel() == 0 or total == 0:
        return d_low, d_high
    block = min(cm.next_pow2(total), MAX_BLOCK)
    with cm.device_guard(grad):
        _fade_in_bwd_kernel[(cm.cdiv(total, block),)](
            grad, d_low, d_high, ptr, value, total, C, h, w,
            *grad.stride(), *d_low.stride(), *d_high.stride(),
            SHIFT=shift, CL=_channels_last_order(d_low), ALPHA_FROM_PTR=from_ptr,
            ACC=cm.acc_dtype(grad.dtype), BLOCK=block, num_warps=cm.num_warps(block))
    return d_low, d_high
