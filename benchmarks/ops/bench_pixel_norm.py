"""Benchmark pixel_norm: python -m benchmarks.ops.bench_pixel_norm [--device cuda]"""

import torch

import pygan.ops as ops
from benchmarks.ops._bench import OpBench, tensor_bytes
from benchmarks.ops.cli import main


def inputs(shape, dtype, device, channels_last):
    x = torch.randn(shape, dtype=dtype, device=device)
    return [x.contiguous(memory_format=torch.channels_last) if channels_last else x]


# passes over x: forward reads x, writes y; backward reads g and x, writes dx; the double
# backward reads h, g and x and writes dg and dx
PASSES = {"fwd": 2, "fwd+bwd": 5, "double-bwd": 10}

BENCH = OpBench(
    name="pixel_norm",
    inputs=inputs,
    call=lambda backend: lambda x: ops.pixel_norm(x, backend=backend),
    min_bytes=lambda ins, mode: PASSES[mode] * tensor_bytes(ins[0]),
)

if __name__ == "__main__":
    main(BENCH)
