"""Benchmark bias_lrelu: python -m benchmarks.ops.bench_bias_lrelu [--device cuda]"""

import math

import torch

import pygan.ops as ops
from benchmarks.ops._bench import OpBench, tensor_bytes
from benchmarks.ops.cli import main


def inputs(shape, dtype, device, channels_last):
    x = torch.randn(shape, dtype=dtype, device=device)
    x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    return [x, torch.randn(shape[1], dtype=dtype, device=device)]


# forward reads x, writes y; backward reads g and y, writes dx; double backward reads h, y, writes dg
PASSES = {"fwd": 2, "fwd+bwd": 5, "double-bwd": 8}

BENCH = OpBench(
    name="bias_lrelu",
    inputs=inputs,
    call=lambda backend: lambda x, b: ops.bias_lrelu(x, b, scale=0.5, gain=math.sqrt(2), backend=backend),
    min_bytes=lambda ins, mode: PASSES[mode] * tensor_bytes(ins[0]),
)

if __name__ == "__main__":
    main(BENCH)
