"""pygan's CPU output cache (pygan.ops.cpu_cache, csrc/output_cache.cpp): freed outputs of the C++
CPU kernels are reused for the next output of the same size, within the limit, and a reused
buffer gives the same tensors (values, strides) as a fresh one."""

import pickle
import subprocess
import sys
import threading

import pytest
import torch

import pygan.ops as ops
from pygan.ops import _library, cpu_cache

pytestmark = pytest.mark.skipif(bool(_library._extension_error),
                                reason=f"needs the C++ extension: {_library._extension_error}")

# 1 MiB per output: the smallest size the cache takes (kRecycleMinBytes)
SHAPE = (2, 32, 64, 64)
MIB = 1 << 20


@pytest.fixture(autouse=True)
def fresh_cache():
    """Each test starts from an empty cache with a 64 MiB limit and leaves the limit as it was."""
    limit = cpu_cache.info().limit_bytes
    cpu_cache.set_limit(64 * MIB)
    cpu_cache.empty()
    yield
    cpu_cache.set_limit(limit)


def forward(x, **kw):
    return ops.instance_norm_act(x, activation="lrelu", backend="cpp", **kw)


def test_a_freed_output_is_reused_for_the_next_one():
    x = torch.randn(SHAPE)
    y = forward(x)
    address = y.data_ptr()
    del y
    assert cpu_cache.info().cached_bytes == MIB
    before = cpu_cache.info().hits
    y = forward(torch.randn(SHAPE))
    assert y.data_ptr() == address
    assert cpu_cache.info().hits == before + 1
    assert cpu_cache.info().cached_bytes == 0


def test_outputs_in_reused_buffers_equal_fresh_ones():
    """A reused buffer holds the previous output's values: every element must be overwritten, in
    the forward (with and without a residual) and in the backward, in both layouts."""
    torch.manual_seed(0)
    for memory_format in (torch.contiguous_format, torch.channels_last):
        x = torch.randn(SHAPE).contiguous(memory_format=memory_format).requires_grad_()
        res = torch.randn(SHAPE).contiguous(memory_format=memory_format)
        g = torch.randn(SHAPE)

        def step():
            y = ops.instance_norm_act(x, activation="relu", residual=res, backend="cpp")
            (dx,) = torch.autograd.grad(y, x, g)
            return y.detach().clone(), dx.clone()

        cpu_cache.set_limit(0)
        fresh = step()
        cpu_cache.set_limit(64 * MIB)
        for _ in range(3):   # the first fills the cache, the rest reuse its blocks
            # stale values in the blocks: NaN everywhere
            forward(torch.full(SHAPE, float("nan"))).fill_(float("nan"))
            reused = step()
            assert cpu_cache.info().hits > 0
            for a, b in zip(fresh, reused):
                torch.testing.assert_close(b, a, rtol=0, atol=0)


# Every other op's C++ kernels take their outputs from the cache too: (4, 16, 64, 64) float32 is
# 1 MiB, so each op's output and input gradients are cached (fade_in's low input is a quarter).
OTHER_OPS = {
    "pixel_norm": lambda x, low, b: ops.pixel_norm(x, backend="cpp"),
    "bias_lrelu": lambda x, low, b: ops.bias_lrelu(x, b, scale=0.5, backend="cpp"),
    "bias_lrelu_pixel_norm": lambda x, low, b: ops.bias_lrelu_pixel_norm(x, b, backend="cpp"),
    "minibatch_std": lambda x, low, b: ops.minibatch_std(x, backend="cpp"),
    "fade_in": lambda x, low, b: ops.fade_in(low, x, 0.3, activation="tanh", backend="cpp"),
    "gradient_penalty": lambda x, low, b: ops.gradient_penalty(x, backend="cpp"),
}
# the fused penalty differentiates once (its double backward raises, by design): no second order
FIRST_ORDER_ONLY = {"gradient_penalty"}


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("name", sorted(OTHER_OPS))
def test_every_op_overwrites_reused_buffers(name, channels_last):
    """The other six ops, first and second order (first only for the penalty): with NaN left in every block they reuse, the
    output and the gradients equal those computed with the cache off, to the bit."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 16, 64, 64, generator=gen).contiguous(memory_format=fmt).requires_grad_()
    low = torch.randn(4, 16, 32, 32, generator=gen).contiguous(memory_format=fmt).requires_grad_()
    b = torch.randn(16, generator=gen).requires_grad_()
    inputs = (x, low, b)

    def step():
        """Output, first-order gradients, and the gradients of <first-order gradients, h>; then
        NaN into every tensor the op returned, so that their blocks go back to the cache stale."""
        y = OTHER_OPS[name](*inputs)
        g = torch.randn(y.shape, generator=torch.Generator().manual_seed(1)).to(memory_format=fmt) \
            if y.dim() == 4 else torch.tensor(0.7)
        used = list(inputs)
        twice = name not in FIRST_ORDER_ONLY
        grads = torch.autograd.grad(y, used, g, create_graph=twice, allow_unused=True)
        pairs = [(gr, t) for gr, t in zip(grads, used) if gr is not None]
        second = torch.autograd.grad(sum((gr * (t.detach() + 1)).sum() for gr, t in pairs),
                                     used, allow_unused=True) if twice else ()
        result = [y.detach().clone()] + [gr.detach().clone() for gr, _ in pairs] + \
                 [s.clone() for s in second if s is not None]
        for t in [y] + [gr for gr, _ in pairs] + [s for s in second if s is not None]:
            t.detach().fill_(float("nan"))
        return result

    cpu_cache.set_limit(0)
    fresh = step()
    cpu_cache.set_limit(64 * MIB)
    hits = cpu_cache.info().hits
    for _ in range(3):   # the first fills the cache, the rest reuse its (NaN-filled) blocks
        reused = step()
        assert len(reused) == len(fresh)
        for a, r in zip(fresh, reused):
            torch.testing.assert_close(r, a, rtol=0, atol=0, equal_nan=False)
    assert cpu_cache.info().hits > hits


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided"])
def test_output_strides_match_empty_like(layout):
    base = torch.randn(2, 32, 64, 128)
    x = {"contiguous": base[..., :64].contiguous(),
         "channels_last": base[..., :64].contiguous(memory_format=torch.channels_last),
         "strided": base[..., ::2]}[layout]
    for _ in range(2):   # a fresh block, then a reused one
        y = forward(x)
        assert y.stride() == torch.empty_like(x).stride()
        torch.testing.assert_close(y, ops.instance_norm_act_reference(x, activation="lrelu"))
        del y
    assert cpu_cache.info().hits >= 1


def test_the_limit_bounds_what_is_kept():
    cpu_cache.set_limit(MIB + MIB // 2)
    a, b = forward(torch.randn(SHAPE)), forward(torch.randn(SHAPE))
    del a, b
    info = cpu_cache.info()
    assert (info.cached_bytes, info.cached_blocks) == (MIB, 1)
    cpu_cache.set_limit(MIB // 2)   # a lower limit frees what is over it at once
    assert cpu_cache.info().cached_bytes == 0


def test_a_zero_limit_turns_the_cache_off():
    cpu_cache.set_limit(0)
    hits = cpu_cache.info().hits
    for _ in range(3):
        forward(torch.randn(SHAPE))
    info = cpu_cache.info()
    assert (info.cached_bytes, info.hits) == (0, hits)


def test_small_outputs_use_pytorch_allocator():
    misses = cpu_cache.info().misses
    y = forward(torch.randn(1, 8, 16, 16))
    del y
    info = cpu_cache.info()
    assert (info.cached_bytes, info.misses) == (0, misses)


def test_cached_outputs_behave_as_any_tensor():
    y = forward(torch.randn(SHAPE))
    expected = y.clone()
    assert torch.equal(pickle.loads(pickle.dumps(y)), expected)
    y.resize_(4, 32, 64, 64)   # reallocates through the cache's allocator, keeps the values
    assert torch.equal(y[:2], expected)
    del y
    assert cpu_cache.info().cached_blocks == 2   # the 1 MiB block and the 2 MiB one


def test_outputs_may_die_on_another_thread():
    ys = [forward(torch.randn(SHAPE)) for _ in range(4)]
    threads = [threading.Thread(target=ys.pop) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cpu_cache.info().cached_bytes == 4 * MIB


def test_set_limit_rejects_bad_limits():
    for bad in (-1, 1.5, "1", True):
        with pytest.raises(ValueError, match="limit_bytes must be an int >= 0"):
            cpu_cache.set_limit(bad)


def test_bad_environment_limit_names_the_variable():
    code = "import torch, pygan.ops.cpu_cache as c; c.info()"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PYGAN_CPU_CACHE_MB": "lots", "PYGAN_QUIET_IMPORT": "1",
                               "PATH": "/usr/bin:/bin"}, timeout=120)
    assert proc.returncode != 0
    assert "PYGAN_CPU_CACHE_MB must be a whole number of MiB >= 0" in proc.stderr
    assert "got 'lots'" in proc.stderr
