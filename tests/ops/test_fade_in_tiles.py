"""The Triton fade-in's 2-D tiling (triton_kernels/fade_in.py): tiles of BLOCK_R rows x BLOCK_I
inner elements, a grid over (row blocks, inner blocks), rows split into coordinates once per row.
With a tiny TILE every tail (rows and inner dim) and every grid axis holds several blocks; the
results must equal the reference exactly in float64 (the maths is one multiply-add per element),
and with tanh to a few ulps (the interpreter's tanh is built from exp)."""

import pytest
import torch

import pygan.ops as ops
from pygan.ops import _registry

pytestmark = pytest.mark.skipif(not _registry.status("triton"), reason="the Triton backend cannot run here")


@pytest.fixture
def fi(monkeypatch):
    from pygan.triton_kernels import fade_in
    monkeypatch.setattr(fade_in, "TILE", 8)
    return fade_in


@pytest.mark.parametrize("row64", [False, True], ids=["rows32", "rows64"])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("up", [True, False], ids=["up", "same"])
@pytest.mark.parametrize("tanh", [False, True], ids=["linear", "tanh"])
def test_small_tiles_forward_and_backward_match_the_reference(fi, monkeypatch, layout, up, row64, tanh):
    if row64:   # the 64-bit row index path (taken from 2^31 rows on) at a small size
        tiles = fi._tiles
        monkeypatch.setattr(fi, "_tiles", lambda shape, cl, tile=None: (*tiles(shape, cl, tile)[:4], True))
    high = torch.randn(3, 5, 6, 10, dtype=torch.float64).contiguous(memory_format=layout)
    low = (torch.randn(3, 5, 3, 5, dtype=torch.float64) if up else torch.randn(3, 5, 6, 10, dtype=torch.float64))
    low = low.contiguous(memory_format=layout)
    rows, inner, block_r, block_i, _ = fi._tiles(tuple(high.shape), layout == torch.channels_last)
    assert block_r * block_i <= 8 and rows > block_r and (inner > block_i or layout == torch.channels_last)
    alpha = torch.tensor(0.3, dtype=torch.float64)
    out = fi.launch_fade_in(low, high, alpha, tanh=tanh)
    torch.testing.assert_close(out, ops.fade_in_reference(low, high, 0.3, "tanh" if tanh else None),
                               rtol=0, atol=1e-15)
    grad = torch.randn(high.shape, dtype=torch.float64).contiguous(memory_format=layout)
    d_low, d_high = fi.launch_fade_in_bwd(grad, alpha, up, out if tanh else None)
    gz = grad * (1 - out * out) if tanh else grad
    ref_low = (0.7 * torch.nn.functional.avg_pool2d(gz, 2) * 4) if up else 0.7 * gz
    torch.testing.assert_close(d_high, 0.3 * gz, rtol=0, atol=1e-15)
    torch.testing.assert_close(d_low, ref_low, rtol=0, atol=1e-14)


def test_tiles_put_the_layouts_inner_dim_in_the_tile():
    from pygan.triton_kernels import fade_in as fi
    assert fi._tiles((16, 3, 256, 256), True) == (16 * 256 * 256, 3, fi.TILE // 4, 4, False)
    assert fi._tiles((16, 3, 256, 256), False) == (16 * 3 * 256, 256, fi.TILE // 256, 256, False)
    assert fi._tiles((2, 4, 1, 1), False)[2:4] == (8, 1)
