"""Instance norm + activation (+ residual) in Triton (the maths of ``pygan.ops.instance_norm_act``).

For every plane (n, c) of x seen as (N, C, S):

    mu = mean_s x,  m2 = sum_s (x - mu)^2,  r = 1 / sqrt(m2 / S + eps),  xh = (x - mu) * r
    z = xh * w[c] + b[c],  y = z * (1 if z > 0 else slope) + residual

Backward (``instance_norm_act_bwd(grad, x, weight, bias, slope, eps)``), dz = g * act'(z):

    dx = w r (dz - mean_s dz - xh mean_s(dz xh)),  dw[c] = sum_{n,s} dz xh,  db[c] = sum_{n,s} dz

Programs own a [BLOCK_C, BLOCK_S] tile of channels x pixels of one sample; channels_last tensors
put 32 channels in a tile (loads coalesce along channels), other layouts put the pixels first.
A plane is cut into chunks of ``PLANE_CHUNK`` pixels (``CL_CHUNK`` for channels_last):

  * one chunk (the plane fits): one program computes the statistics (the mean, then the squares
    about it) and writes its outputs: one pass over memory, the re-reads hit the cache;
  * several chunks (256x256 planes at C = 64, say): a first kernel writes each chunk's (mean,
    sum of squares about it); the next merges a plane's chunks in a fixed order with Chan's
    formula (in groups of ``MERGE_GROUP`` chunks, then the groups: two levels, so no running
    mean takes more than max(16, K / 16) merges) and writes. The backward adds a kernel between them for the chunk sums of dz and
    dz * xh. No atomics: results are the same bits on every run.

Sums accumulate in float32 (float64 for float64 inputs). dw and db are summed over (n, chunk)
by torch in a fixed order.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import _common as cm
from ._common import precise_div, precise_rsqrt, round_to, scalar

#: Pixels per chunk of a plane: planes up to this size are done by one program.
PLANE_CHUNK = 8192
#: Pixels per chunk for channels_last tensors (a tile holds 32 channels: fewer pixels per
#: program, so that enough programs run).
CL_CHUNK = 256
#: Channels per tile for channels_last tensors.
CL_BLOCK_C = 32
#: Chunks per group of the two-level merge of chunk statistics and sums (a 256x256
#: channels_last plane has 256 chunks; merged one by one, its float32 output error was 2.4x
#: eager's largest on the CPU, under the interpreter).
MERGE_GROUP = tl.constexpr(16)

# Kernel phases
FUSED, PARTIAL, APPLY = 0, 1, 2


@cm.device_function
def _moments(base, c, c_mask, s_lo, s_hi, sc, ss, ACC: tl.constexpr, BLOCK_C: tl.constexpr,
             BLOCK_S: tl.constexpr):
    """(mean, sum of squares about the mean) over pixels [s_lo, s_hi) of channels c: [BLOCK_C]."""
    s_ar = tl.arange(0, BLOCK_S)
    steps = tl.cdiv(s_hi - s_lo, BLOCK_S)
    acc = tl.full([BLOCK_C, BLOCK_S], 0, ACC)
    for i in range(0, steps):
        s = s_lo + i * BLOCK_S + s_ar
        m = c_mask[:, None] & (s < s_hi)[None, :]
        acc += tl.load(base + c[:, None] * sc + s[None, :] * ss, mask=m, other=0.0).to(ACC)
    mean = precise_div(tl.sum(acc, axis=1), tl.full([BLOCK_C], 0, ACC) + (s_hi - s_lo).to(ACC))
    acc = tl.full([BLOCK_C, BLOCK_S], 0, ACC)
    for i in range(0, steps):
        s = s_lo + i * BLOCK_S + s_ar
        m = c_mask[:, None] & (s < s_hi)[None, :]
        v = tl.load(base + c[:, None] * sc + s[None, :] * ss, mask=m, other=0.0).to(ACC)
        d = tl.where(m, v - mean[:, None], 0.0)
        acc += d * d
    return mean, tl.sum(acc, axis=1)


@cm.device_function
def _merged_moments(mean_ptr, m2_ptr, row, c_mask, S, K, CHUNK, ACC: tl.constexpr,
                    BLOCK_C: tl.constexpr):
    """A plane's (mean, sum of squares) from its K chunks' partials at row * K + k (Chan et al.,
    in chunk order, in groups of MERGE_GROUP chunks merged into the plane's statistics)."""
    mean = tl.full([BLOCK_C], 0, ACC)
    m2 = tl.full([BLOCK_C], 0, ACC)
    count = tl.full([BLOCK_C], 0, ACC)
    for k0 in range(0, K, MERGE_GROUP):
        g_mean = tl.full([BLOCK_C], 0, ACC)
        g_m2 = tl.full([BLOCK_C], 0, ACC)
        g_count = tl.full([BLOCK_C], 0, ACC)
        for k in range(k0, tl.minimum(K, k0 + MERGE_GROUP)):
            lo = k * CHUNK
            nb = tl.full([BLOCK_C], 0, ACC) + (tl.minimum(S, lo + CHUNK) - lo).to(ACC)
            mb = tl.load(mean_ptr + row * K + k, mask=c_mask, other=0.0)
            qb = tl.load(m2_ptr + row * K + k, mask=c_mask, other=0.0)
            g_mean, g_m2, g_count = _chan_merge(g_mean, g_m2, g_count, mb, qb, nb)
        mean, m2, count = _chan_merge(mean, m2, count, g_mean, g_m2, g_count)
    return mean, m2


@cm.device_function
def _chan_merge(mean, m2, count, mb, qb, nb):
    """Statistics (mean, m2, count) merged with a part's (mb, qb, nb) (Chan et al.)."""
    total = count + nb
    delta = mb - mean
    mean += delta * precise_div(nb, total)
    m2 += qb + delta * delta * precise_div(count * nb, total)
    return mean, m2, total


@cm.device_function
def _coords(S, CB, K, CHUNK, C, BLOCK_C: tl.constexpr):
    pid = tl.program_id(0).to(tl.int64)
    k = pid % K
    t = pid // K
    n = t // CB
    c = (t % CB) * BLOCK_C + tl.arange(0, BLOCK_C).to(tl.int64)
    s_lo = k * CHUNK
    s_hi = tl.minimum(S, s_lo + CHUNK)
    return n, c, c < C, k, s_lo, s_hi


@triton.jit
def _stats_kernel(x_ptr, mean_ptr, m2_ptr, C, S, CB, K, CHUNK, x_sn, x_sc, x_ss,
                  ACC: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr):
    """Partial statistics of chunk k of planes (n, c): mean_ptr/m2_ptr[(n * C + c) * K + k]."""
    n, c, c_mask, k, s_lo, s_hi = _coords(S, CB, K, CHUNK, C, BLOCK_C)
    mean, m2 = _moments(x_ptr + n * x_sn, c, c_mask, s_lo, s_hi, x_sc, x_ss, ACC, BLOCK_C, BLOCK_S)
    idx = (n * C + c) * K + k
    tl.store(mean_ptr + idx, mean, mask=c_mask)
    tl.store(m2_ptr + idx, m2, mask=c_mask)


@cm.device_function
def _plane_stats(x_ptr, mean_ptr, m2_ptr, n, c, c_mask, S, K, CHUNK, C, x_sn, x_sc, x_ss, eps,
                 ACC: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr,
                 PHASE: tl.constexpr):
    """(mean, r) of planes (n, c): computed here when the plane is one chunk, else merged."""
    if PHASE == 0:
        mean, m2 = _moments(x_ptr + n * x_sn, c, c_mask, 0, S, x_sc, x_ss, ACC, BLOCK_C, BLOCK_S)
    else:
        mean, m2 = _merged_moments(mean_ptr, m2_ptr, n * C + c, c_mask, S, K, CHUNK, ACC, BLOCK_C)
    r = precise_rsqrt(precise_div(m2, tl.full([BLOCK_C], 0, ACC) + S.to(ACC)) + scalar(eps, ACC))
    return mean, r


@triton.jit
def _fwd_kernel(x_ptr, w_ptr, b_ptr, res_ptr, y_ptr, mean_ptr, m2_ptr, C, S, CB, K, CHUNK,
                x_sn, x_sc, x_ss, r_sn, r_sc, r_ss, y_sn, y_sc, y_ss,
                slope: tl.float64, eps: tl.float64,
                ACC: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr,
                PHASE: tl.constexpr, HAS_W: tl.constexpr, HAS_B: tl.constexpr,
                HAS_RES: tl.constexpr):
    n, c, c_mask, k, s_lo, s_hi = _coords(S, CB, K, CHUNK, C, BLOCK_C)
    mean, r = _plane_stats(x_ptr, mean_ptr, m2_ptr, n, c, c_mask, S, K, CHUNK, C, x_sn, x_sc,
                           x_ss, eps, ACC, BLOCK_C, BLOCK_S, PHASE)
    a = r
    if HAS_W:
        a = r * tl.load(w_ptr + c, mask=c_mask, other=1.0).to(ACC)
    b = tl.full([BLOCK_C], 0, ACC)
    if HAS_B:
        b = tl.load(b_ptr + c, mask=c_mask, other=0.0).to(ACC)
    sl = scalar(slope, ACC)
    s_ar = tl.arange(0, BLOCK_S)
    for i in range(0, tl.cdiv(s_hi - s_lo, BLOCK_S)):
        s = s_lo + i * BLOCK_S + s_ar
        m = c_mask[:, None] & (s < s_hi)[None, :]
        x = tl.load(x_ptr + n * x_sn + c[:, None] * x_sc + s[None, :] * x_ss, mask=m,
                    other=0.0).to(ACC)
        z = (x - mean[:, None]) * a[:, None] + b[:, None]
        y = z * tl.where(z > 0, 1.0, sl)
        if HAS_RES:
            y += tl.load(res_ptr + n * r_sn + c[:, None] * r_sc + s[None, :] * r_ss, mask=m,
                         other=0.0).to(ACC)
        tl.store(y_ptr + n * y_sn + c[:, None] * y_sc + s[None, :] * y_ss,
                 round_to(y, y_ptr.dtype.element_ty), mask=m)


@triton.jit
def _xh_dz(x_base, g_base, c, s, m, x_sc, x_ss, g_sc, g_ss, mean, r, w, b, sl, ACC: tl.constexpr):
    """One [BLOCK_C, BLOCK_S] tile of the backward: xh = (x - mean) * r and
    dz = g * act'(xh * w + b), act'(z) = 1 if z > 0 else slope."""
    x = tl.load(x_base + c[:, None] * x_sc + s[None, :] * x_ss, mask=m, other=0.0).to(ACC)
    g = tl.load(g_base + c[:, None] * g_sc + s[None, :] * g_ss, mask=m, other=0.0).to(ACC)
    xh = (x - mean[:, None]) * r[:, None]
    dz = g * tl.where(xh * w[:, None] + b[:, None] > 0, 1.0, sl)
    return xh, dz


@triton.jit
def _bwd_kernel(g_ptr, x_ptr, w_ptr, b_ptr, d_ptr, mean_ptr, m2_ptr, t1_ptr, t2_ptr,
                C, S, CB, K, CHUNK, g_sn, g_sc, g_ss, x_sn, x_sc, x_ss, d_sn, d_sc, d_ss,
                slope: tl.float64, eps: tl.float64,
                ACC: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr,
                PHASE: tl.constexpr, HAS_W: tl.constexpr, HAS_B: tl.constexpr):
    """PHASE 0 (one chunk per plane): sums and dx. PHASE 1: chunk sums of dz and dz * xh into
    t1/t2[(n * C + c) * K + k]. PHASE 2: dx from the merged statistics and sums."""
    n, c, c_mask, k, s_lo, s_hi = _coords(S, CB, K, CHUNK, C, BLOCK_C)
    mean, r = _plane_stats(x_ptr, mean_ptr, m2_ptr, n, c, c_mask, S, K, CHUNK, C, x_sn, x_sc,
                           x_ss, eps, ACC, BLOCK_C, BLOCK_S, PHASE)
    w = tl.full([BLOCK_C], 1, ACC)
    if HAS_W:
        w = tl.load(w_ptr + c, mask=c_mask, other=1.0).to(ACC)
    b = tl.full([BLOCK_C], 0, ACC)
    if HAS_B:
        b = tl.load(b_ptr + c, mask=c_mask, other=0.0).to(ACC)
    sl = scalar(slope, ACC)
    s_ar = tl.arange(0, BLOCK_S)
    steps = tl.cdiv(s_hi - s_lo, BLOCK_S)
    row = n * C + c
    if PHASE == 2:
        t1 = tl.full([BLOCK_C], 0, ACC)
        t2 = tl.full([BLOCK_C], 0, ACC)
        for k0 in range(0, K, MERGE_GROUP):   # two levels, as the statistics
            g1 = tl.full([BLOCK_C], 0, ACC)
            g2 = tl.full([BLOCK_C], 0, ACC)
            for kk in range(k0, tl.minimum(K, k0 + MERGE_GROUP)):
                g1 += tl.load(t1_ptr + row * K + kk, mask=c_mask, other=0.0)
                g2 += tl.load(t2_ptr + row * K + kk, mask=c_mask, other=0.0)
            t1 += g1
            t2 += g2
    else:
        a1 = tl.full([BLOCK_C, BLOCK_S], 0, ACC)
        a2 = tl.full([BLOCK_C, BLOCK_S], 0, ACC)
        for i in range(0, steps):
            s = s_lo + i * BLOCK_S + s_ar
            m = c_mask[:, None] & (s < s_hi)[None, :]
            xh, dz = _xh_dz(x_ptr + n * x_sn, g_ptr + n * g_sn, c, s, m, x_sc, x_ss, g_sc, g_ss,
                            mean, r, w, b, sl, ACC)
            a1 += dz
            a2 += dz * xh
        t1 = tl.sum(a1, axis=1)
        t2 = tl.sum(a2, axis=1)
        tl.store(t1_ptr + row * K + k, t1, mask=c_mask)
        tl.store(t2_ptr + row * K + k, t2, mask=c_mask)
    if PHASE != 1:
        a = w * r
        n_s = tl.full([BLOCK_C], 0, ACC) + S.to(ACC)
        k1 = precise_div(a * t1, n_s)
        k2 = precise_div(a * t2, n_s)
        for i in range(0, steps):
            s = s_lo + i * BLOCK_S + s_ar
            m = c_mask[:, None] & (s < s_hi)[None, :]
            xh, dz = _xh_dz(x_ptr + n * x_sn, g_ptr + n * g_sn, c, s, m, x_sc, x_ss, g_sc, g_ss,
                            mean, r, w, b, sl, ACC)
            dx = a[:, None] * dz - k1[:, None] - xh * k2[:, None]
            tl.store(d_ptr + n * d_sn + c[:, None] * d_sc + s[None, :] * d_ss,
                     round_to(dx, d_ptr.dtype.element_ty), mask=m)


#: Elements per [BLOCK_C, BLOCK_S] tile: half the shared TILE, because the backward keeps two
#: float32 accumulator tiles beside its loads (at 4096 elements and 8 warps it needed 255
#: registers a thread and the bfloat16 forward spilled 8 bytes, in the static sm_90 check).
INA_TILE = cm.TILE // 2


class _Plan:
    """Tile and chunking for x seen as (N, C, S)."""

    def __init__(self, v: cm.NCS):
        if v.channels_inner():
            self.block_c = min(cm.next_pow2(v.c), CL_BLOCK_C)
            chunk = CL_CHUNK
            self.block_s = min(cm.next_pow2(min(v.s, chunk)), max(1, INA_TILE // self.block_c))
        else:
            chunk = PLANE_CHUNK
            self.block_s = min(cm.next_pow2(min(v.s, chunk)), INA_TILE)
            self.block_c = min(cm.next_pow2(v.c), max(1, INA_TILE // self.block_s))
        self.chunk = chunk if v.s > chunk else v.s
        self.k = cm.cdiv(v.s, self.chunk)
        self.cb = cm.cdiv(v.c, self.block_c)
        self.programs = v.n * self.cb * self.k
        self.num_warps = cm.num_warps(self.block_c * self.block_s)

    @property
    def fused(self) -> bool:
        return self.k == 1


def _check(op: str, x: torch.Tensor, weight, bias) -> None:
    if x.dim() < 3:
        raise ValueError(f"pygan_triton::{op}: x must be (N, C, *spatial), got {tuple(x.shape)}")
    cm.check_float("x", op, x)
    s = 1
    for d in x.shape[2:]:
        s *= d
    if s <= 1 and x.numel() > 0:
        raise ValueError(f"pygan_triton::{op}: instance norm needs more than one spatial element "
                         f"per channel, got x of shape {tuple(x.shape)}")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and (p.shape != (x.shape[1],) or p.dtype != x.dtype
                              or p.device != x.device):
            raise ValueError(f"pygan_triton::{op}: {name} must be (C,) with x's dtype and device")


def _partials(v: cm.NCS, plan: _Plan, x: torch.Tensor, xin: torch.Tensor):
    """Per-chunk statistics (split planes), or placeholders (fused)."""
    acc = cm.torch_acc_dtype(x.dtype)
    if plan.fused:
        dummy = torch.empty(1, dtype=acc, device=x.device)
        return dummy, dummy
    mean = torch.empty(v.n * v.c * plan.k, dtype=acc, device=x.device)
    m2 = torch.empty_like(mean)
    _stats_kernel[(plan.programs,)](
        xin, mean, m2, v.c, v.s, plan.cb, plan.k, plan.chunk, *v.strides,
        ACC=cm.acc_dtype(x.dtype), BLOCK_C=plan.block_c, BLOCK_S=plan.block_s,
        num_warps=plan.num_warps)
    return mean, m2


def instance_norm_act(x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None,
                      residual: torch.Tensor | None, negative_slope: float,
                      eps: float) -> torch.Tensor:
    """Launcher of ``pygan_triton::instance_norm_act``."""
    _check("instance_norm_act", x, weight, bias)
    if residual is not None and (residual.shape != x.shape or residual.dtype != x.dtype
                                 or residual.device != x.device):
        raise ValueError("pygan_triton::instance_norm_act: residual must match x in shape, dtype "
                         "and device")
    out = torch.empty_like(x)
    if x.numel() == 0:
        return out
    xin, xv = cm.ncs_input(x)
    rin, rv = cm.ncs_input(residual) if residual is not None else (xin, xv)
    work, yv = cm.ncs_output(out)
    plan = _Plan(xv)
    w = weight.contiguous() if weight is not None else xin
    b = bias.contiguous() if bias is not None else xin
    with cm.device_guard(x):
        mean, m2 = _partials(xv, plan, x, xin)
        _fwd_kernel[(plan.programs,)](
            xin, w, b, rin, work, mean, m2, xv.c, xv.s, plan.cb, plan.k, plan.chunk,
            *xv.strides, *rv.strides, *yv.strides, float(negative_slope), float(eps),
            ACC=cm.acc_dtype(x.dtype), BLOCK_C=plan.block_c, BLOCK_S=plan.block_s,
            PHASE=FUSED if plan.fused else APPLY, HAS_W=weight is not None,
            HAS_B=bias is not None, HAS_RES=residual is not None, num_warps=plan.num_warps)
    return cm.finish(out, work)


def instance_norm_act_bwd(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor | None,
                          bias: torch.Tensor | None, negative_slope: float, eps: float):
    """Launcher of ``pygan_triton::instance_norm_act_bwd``: (dx, dweight, dbias)."""
    _check("instance_norm_act_bwd", x, weight, bias)
    if grad.shape != x.shape or grad.dtype != x.dtype or grad.device != x.device:
        raise ValueError("pygan_triton::instance_norm_act_bwd: grad must match x in shape, dtype "
                         "and device")
    out = torch.empty_like(x)
    C = x.shape[1]
    if x.numel() == 0:
        return out, x.new_zeros((C,)), x.new_zeros((C,))
    gin, gv = cm.ncs_input(grad)
    xin, xv = cm.ncs_input(x)
    work, dv = cm.ncs_output(out)
    plan = _Plan(xv)
    acc = cm.torch_acc_dtype(x.dtype)
    t1 = torch.empty(xv.n * C * plan.k, dtype=acc, device=x.device)
    t2 = torch.empty_like(t1)
    w = weight.contiguous() if weight is not None else xin
    b = bias.contiguous() if bias is not None else xin
    common = dict(ACC=cm.acc_dtype(x.dtype), BLOCK_C=plan.block_c, BLOCK_S=plan.block_s,
                  HAS_W=weight is not None, HAS_B=bias is not None, num_warps=plan.num_warps)
    with cm.device_guard(x):
        mean, m2 = _partials(xv, plan, x, xin)
        args = (gin, xin, w, b, work, mean, m2, t1, t2, C, xv.s, plan.cb, plan.k, plan.chunk,
                *gv.strides, *xv.strides, *dv.strides, float(negative_slope), float(eps))
        if plan.fused:
            _bwd_kernel[(plan.programs,)](*args, PHASE=FUSED, **common)
        else:
            _bwd_kernel[(plan.programs,)](*args, PHASE=PARTIAL, **common)
            _bwd_kernel[(plan.programs,)](*args, PHASE=APPLY, **common)
    t1 = t1.view(xv.n, C, plan.k).sum(dim=(0, 2))
    t2 = t2.view(xv.n, C, plan.k).sum(dim=(0, 2))
    return cm.finish(out, work), t2.to(x.dtype), t1.to(x.dtype)
