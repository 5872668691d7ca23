"""Benchmark fade_in (low at half resolution): python -m benchmarks.ops.bench_fade_in"""

import torch

import pygan.ops as ops
from benchmarks.ops._bench import OpBench, tensor_bytes
from benchmarks.ops.cli import main


def inputs(shape, dtype, device, channels_last):
    n, c, h, w = shape
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    high = torch.randn(shape, dtype=dtype, device=device).contiguous(memory_format=fmt)
    low = torch.randn(n, c, h // 2, w // 2, dtype=dtype, device=device).contiguous(memory_format=fmt)
    return [low, high]


# in units of high: forward reads low (1/4) and high, writes out; backward reads g, writes
# d_low (1/4) and d_high; the double backward reads h_low, h_high and writes dg
PASSES = {"fwd": 2.25, "fwd+bwd": 4.5, "double-bwd": 6.75}

BENCH = OpBench(
    name="fade_in",
    inputs=inputs,
    call=lambda backend: lambda low, high: ops.fade_in(low, high, 0.3, backend=backend),
    min_bytes=lambda ins, mode: int(PASSES[mode] * tensor_bytes(ins[1])),
)

if __name__ == "__main__":
    main(BENCH)
