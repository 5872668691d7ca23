"""Progressive-growing fade-in in Triton (the maths of ``pygan.ops.fade_in``).

Forward, with up = 2x nearest-neighbour upsampling (SHIFT = 1) or the identity (SHIFT = 0):

    z[n, c, h, w] = alpha * high[n, c, h, w] + (1 - alpha) * low[n, c, h >> SHIFT, w >> SHIFT]
    out = z, or out = tanh(z) when TANH (``fade_in(low, high, alpha, tanh=True)``)

Backward (``fade_in_bwd(grad, alpha, upsampled, tanh_out=None)`` -> (d_low, d_high)):

    gz = grad, or gz = grad * (1 - y)(1 + y) when TANH, y = tanh_out (the forward's output)
    d_high = alpha * gz
    d_low[n, c, y, x] = (1 - alpha) * sum of gz over the 2x2 block (2y.., 2x..) (or gz itself)

Gradient order: linear, ``fade_in_bwd`` is linear in grad and its transpose is ``fade_in``; with
tanh its double backward is the linear ``fade_in`` times (1 - y^2) plus elementwise PyTorch (all
in ``pygan.ops.fade_in``), so first and second order both run on these kernels. The gradient with
respect to a tensor alpha is plain PyTorch there.

tanh: libdevice's on a GPU; the interpreter has no libdevice, so under TRITON_INTERPRET=1 it is
sign(z) (1 - e) / (1 + e) with e = exp(-2|z|) (no overflow; absolute error a few ulps of 1).

alpha is a 0-dim tensor. On the CPU it is read on the host (``.item()``) and passed as a float64
argument; anywhere else (a CUDA tensor) its pointer goes to the kernel and it is read there, so
no launch waits for the device.

Each program handles a [BLOCK_R, BLOCK_I] tile of the index space (of the output in the forward,
of d_low in the backward) in the memory order of that tensor: rows are (n, h, w) pixels and the
inner dim is c when it is channels_last, else rows are (n, c, h) and the inner dim is w. The grid
is (row blocks, inner blocks), so the split of a row index into coordinates (32-bit division
unless there are 2^31 rows) happens once per row, never per element; addresses are 64-bit. (The
first version split a flat 64-bit index per element in 4096-element, 8-warp blocks: compiled for
sm_90 it took 240-255 registers and spilled in ProGAN's backward.)
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from triton.language.extra import libdevice

from . import _common as cm
from ._common import round_to, scalar

_INTERPRET = cm._INTERPRET

#: Elements per program: a [BLOCK_R rows, BLOCK_I inner] tile (4 warps, 8 elements a thread).
TILE = 1024
#: Warps per program.
NUM_WARPS = 4


@cm.device_function
def _alpha_pair(alpha_ptr, alpha, ALPHA_FROM_PTR: tl.constexpr, ACC: tl.constexpr):
    """(alpha, 1 - alpha) in ACC, 1 - alpha computed in float64 like the C++ kernels."""
    if ALPHA_FROM_PTR:
        a = tl.load(alpha_ptr).to(tl.float64)
    else:
        a = scalar(alpha, tl.float64)
    return a.to(ACC), (1.0 - a).to(ACC)


@cm.device_function
def _tanh(z):
    """tanh(z) in z's dtype (see the module docstring for the interpreter's form)."""
    if _INTERPRET:
        e = tl.exp(-2.0 * tl.abs(z))
        t = (1.0 - e) / (1.0 + e)
        return tl.where(z < 0, -t, t)
    else:
        return libdevice.tanh(z)


@cm.device_function
def _row_coords(r, C, H, W, CL: tl.constexpr):
    """The three outer coordinates of row ``r`` (int32 or int64 vector), as int64.

    channels_last (CL): rows are pixels (n, h, w), the inner dim is c. Else rows are (n, c, h)
    and the inner dim is w. Returns (n, c_or_h, h_or_w) in that order of the layout."""
    if CL:
        b = r % W
        t = r // W
        a = t % H
        n = t // H
    else:
        b = r % H
        t = r // H
        a = t % C
        n = t // C
    return n.to(tl.int64), a.to(tl.int64), b.to(tl.int64)


@triton.jit
def _tile(ROWS, INNER, C, H, W, CL: tl.constexpr, ROW64: tl.constexpr, BLOCK_R: tl.constexpr,
          BLOCK_I: tl.constexpr):
    """This program's tile: inner indices i, the in-bounds mask, and each row's coordinates
    (n, a, b) from :func:`_row_coords` (row indices in 64-bit only when ROW64)."""
    r0 = tl.program_id(0).to(tl.int64) * BLOCK_R if ROW64 else tl.program_id(0) * BLOCK_R
    r = r0 + tl.arange(0, BLOCK_R)
    i = (tl.program_id(1) * BLOCK_I + tl.arange(0, BLOCK_I)).to(tl.int64)
    mask = (r < ROWS)[:, None] & (i < INNER)[None, :]
    n, a, b = _row_coords(r, C, H, W, CL)
    return i, mask, n, a, b


@triton.jit
def _fade_in_fwd_kernel(
    low_ptr, high_ptr, out_ptr, alpha_ptr, alpha: tl.float64, ROWS, INNER, C, H, W,
    l_sn, l_sc, l_sh, l_sw, h_sn, h_sc, h_sh, h_sw, o_sn, o_sc, o_sh, o_sw,
    SHIFT: tl.constexpr, CL: tl.constexpr, ALPHA_FROM_PTR: tl.constexpr, ACC: tl.constexpr,
    ROW64: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_I: tl.constexpr, TANH: tl.constexpr,
):
    """A [BLOCK_R, BLOCK_I] tile of the output: BLOCK_R rows (see :func:`_row_coords`) times
    BLOCK_I consecutive elements of the inner dim. The row split is per row, not per element."""
    i, mask, n, a, b = _tile(ROWS, INNER, C, H, W, CL, ROW64, BLOCK_R, BLOCK_I)
    al, be = _alpha_pair(alpha_ptr, alpha, ALPHA_FROM_PTR, ACC)
    if CL:   # rows (n, h, w), inner c
        h_row = n * h_sn + a * h_sh + b * h_sw
        l_row = n * l_sn + (a >> SHIFT) * l_sh + (b >> SHIFT) * l_sw
        o_row = n * o_sn + a * o_sh + b * o_sw
        h_in, l_in, o_in = i * h_sc, i * l_sc, i * o_sc
    else:    # rows (n, c, h), inner w
        h_row = n * h_sn + a * h_sc + b * h_sh
        l_row = n * l_sn + a * l_sc + (b >> SHIFT) * l_sh
        o_row = n * o_sn + a * o_sc + b * o_sh
        h_in, l_in, o_in = i * h_sw, (i >> SHIFT) * l_sw, i * o_sw
    hv = tl.load(high_ptr + h_row[:, None] + h_in[None, :], mask=mask, other=0.0)
    lv = tl.load(low_ptr + l_row[:, None] + l_in[None, :], mask=mask, other=0.0)
    out = al * hv.to(ACC) + be * lv.to(ACC)
    if TANH:
        out = _tanh(out)
    tl.store(out_ptr + o_row[:, None] + o_in[None, :], round_to(out, out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _fade_in_bwd_kernel(
    g_ptr, y_ptr, dl_ptr, dh_ptr, alpha_ptr, alpha: tl.float64, ROWS, INNER, C, H, W,
    g_sn, g_sc, g_sh, g_sw, y_sn, y_sc, y_sh, y_sw, l_sn, l_sc, l_sh, l_sw, h_sn, h_sc, h_sh, h_sw,
    SHIFT: tl.constexpr, CL: tl.constexpr, ALPHA_FROM_PTR: tl.constexpr, ACC: tl.constexpr,
    ROW64: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_I: tl.constexpr, TANH: tl.constexpr,
):
    """A tile of d_low (H, W are its sizes, rows as in the forward); each element reads its 2x2
    (or 1x1) block of grad (and, when TANH, of the forward's output y) and writes the same block
    of d_high. y is read only when TANH."""
    i, mask, n, a, b = _tile(ROWS, INNER, C, H, W, CL, ROW64, BLOCK_R, BLOCK_I)
    al, be = _alpha_pair(alpha_ptr, alpha, ALPHA_FROM_PTR, ACC)
    total = tl.full([BLOCK_R, BLOCK_I], 0, ACC)
    for dy in tl.static_range(0, 1 << SHIFT):
        for dx in tl.static_range(0, 1 << SHIFT):
            if CL:   # rows (n, y, x), inner c
                yy = (a << SHIFT) + dy
                xx = (b << SHIFT) + dx
                g_off = (n * g_sn + yy * g_sh + xx * g_sw)[:, None] + (i * g_sc)[None, :]
                y_off = (n * y_sn + yy * y_sh + xx * y_sw)[:, None] + (i * y_sc)[None, :]
                h_off = (n * h_sn + yy * h_sh + xx * h_sw)[:, None] + (i * h_sc)[None, :]
            else:    # rows (n, c, y), inner x
                yy = (b << SHIFT) + dy
                xx = (i << SHIFT) + dx
                g_off = (n * g_sn + a * g_sc + yy * g_sh)[:, None] + (xx * g_sw)[None, :]
                y_off = (n * y_sn + a * y_sc + yy * y_sh)[:, None] + (xx * y_sw)[None, :]
                h_off = (n * h_sn + a * h_sc + yy * h_sh)[:, None] + (xx * h_sw)[None, :]
            g = tl.load(g_ptr + g_off, mask=mask, other=0.0).to(ACC)
            if TANH:   # the gradient of z: tanh'(z) = 1 - y^2 = (1 - y)(1 + y)
                yv = tl.load(y_ptr + y_off, mask=mask, other=0.0).to(ACC)
                g = g * ((1.0 - yv) * (1.0 + yv))
            tl.store(dh_ptr + h_off, round_to(al * g, dh_ptr.dtype.element_ty), mask=mask)
            total += g
    if CL:
        l_off = (n * l_sn + a * l_sh + b * l_sw)[:, None] + (i * l_sc)[None, :]
    else:
        l_off = (n * l_sn + a * l_sc + b * l_sh)[:, None] + (i * l_sw)[None, :]
    tl.store(dl_ptr + l_off, round_to(be * total, dl_ptr.dtype.element_ty), mask=mask)


def _tiles(shape, cl: bool, tile: int | None = None) -> tuple[int, int, int, int, bool]:
    """(rows, inner, BLOCK_R, BLOCK_I, ROW64) for an (N, C, H, W) index space walked in the
    layout's order: the inner dim (c if channels_last, else w) gets up to ``tile`` (default
    TILE) elements."""
    tile = TILE if tile is None else max(1, tile)
    n, c, h, w = shape
    inner = c if cl else w
    rows = n * h * w if cl else n * c * h
    block_i = min(cm.next_pow2(inner), tile)
    block_r = max(1, min(tile // block_i, cm.next_pow2(rows)))
    return rows, inner, block_r, block_i, rows + block_r >= 2 ** 31


def _grid(rows: int, inner: int, block_r: int, block_i: int) -> tuple[int, int]:
    return cm.cdiv(rows, block_r), cm.cdiv(inner, block_i)


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


def fade_in(low: torch.Tensor, high: torch.Tensor, alpha: torch.Tensor, tanh: bool = False) -> torch.Tensor:
    """Launcher of ``pygan_triton::fade_in``."""
    return launch_fade_in(low, high, alpha, tanh=tanh)


def fade_in_bwd(grad: torch.Tensor, alpha: torch.Tensor, upsampled: bool,
                tanh_out: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Launcher of ``pygan_triton::fade_in_bwd``: (d_low, d_high)."""
    return launch_fade_in_bwd(grad, alpha, upsampled, tanh_out)


def launch_fade_in(low: torch.Tensor, high: torch.Tensor, alpha: torch.Tensor, *, tanh: bool = False,
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
    cl = _channels_last_order(out)
    # float64 tanh (libdevice's, a long polynomial in double registers) at 8 elements a thread
    # spilled 4 bytes compiled for sm_90 (NCHW, upsampling, 64x16 tiles; 80 registers): half the
    # tile for it, no spill
    rows, inner, block_r, block_i, row64 = _tiles(out.shape, cl, TILE // 2 if tanh and high.dtype == torch.float64
                                                  else None)
    with cm.device_guard(high):
        _fade_in_fwd_kernel[_grid(rows, inner, block_r, block_i)](
            low, high, out, ptr, value, rows, inner, C, H, W,
            *low.stride(), *high.stride(), *out.stride(),
            SHIFT=1 if up else 0, CL=cl, ALPHA_FROM_PTR=from_ptr, ACC=cm.acc_dtype(high.dtype),
            ROW64=row64, BLOCK_R=block_r, BLOCK_I=block_i, TANH=bool(tanh), num_warps=NUM_WARPS)
    return out


def launch_fade_in_bwd(grad: torch.Tensor, alpha: torch.Tensor, upsampled: bool,
                       tanh_out: torch.Tensor | None = None, *,
                       alpha_from_ptr: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The backward launch (``tanh_out``: the forward's output when it applied tanh);
    ``alpha_from_ptr`` as in :func:`launch_fade_in`."""
    if grad.dim() != 4:
        raise ValueError("pygan_triton::fade_in_bwd: grad must be an (N, C, H, W) tensor")
    cm.check_float("grad", "fade_in_bwd", grad)
    if tanh_out is not None and (tanh_out.shape != grad.shape or tanh_out.dtype != grad.dtype
                                 or tanh_out.device != grad.device):
        raise ValueError(f"pygan_triton::fade_in_bwd: tanh_out must be the forward's output, with grad's "
                         f"shape {tuple(grad.shape)}, dtype and device; got {tuple(tanh_out.shape)} "
                         f"{tanh_out.dtype} on {tanh_out.device}")
    y = grad if tanh_out is None else tanh_out   # without tanh: a stand-in pointer, never read
    N, C, H, W = grad.shape
    shift = 1 if upsampled else 0
    h, w = H >> shift, W >> shift
    ptr, value, from_ptr = _alpha_args(alpha, grad, "fade_in_bwd", alpha_from_ptr)
    d_high = torch.empty_like(grad)
    d_low = cm.empty_in_layout_of((N, C, h, w), grad)
    total = d_low.numel()
    if grad.numel() == 0 or total == 0:
        return d_low, d_high
    cl = _channels_last_order(d_low)
    # a d_low element reads and writes 2x2 of grad and d_high: a quarter of the tile keeps the
    # elements per thread, and the registers, those of the forward (148 -> see the static table)
    rows, inner, block_r, block_i, row64 = _tiles(d_low.shape, cl, TILE >> (2 * shift))
    with cm.device_guard(grad):
        _fade_in_bwd_kernel[_grid(rows, inner, block_r, block_i)](
            grad, y, d_low, d_high, ptr, value, rows, inner, C, h, w,
            *grad.stride(), *y.stride(), *d_low.stride(), *d_high.stride(),
            SHIFT=shift, CL=cl, ALPHA_FROM_PTR=from_ptr, ACC=cm.acc_dtype(grad.dtype),
            ROW64=row64, BLOCK_R=block_r, BLOCK_I=block_i, TANH=tanh_out is not None,
            num_warps=NUM_WARPS)
    return d_low, d_high
