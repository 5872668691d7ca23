"""Benchmark bias_lrelu_pixel_norm: python -m benchmarks.ops.bench_bias_lrelu_pixel_norm"""

import math

import torch

import pygan.ops as ops
from benchmarks.ops._bench import OpBench, tensor_bytes
from benchmarks.ops.bench_bias_lrelu import inputs
from benchmarks.ops.cli import main

# forward reads x, writes y; backward reads g and x, writes dx; double backward reads h, g, x,
# writes dg and dx
PASSES = {"fwd": 2, "fwd+bwd": 5, "double-bwd": 10}

BENCH = OpBench(
    name="bias_lrelu_pixel_norm",
    inputs=inputs,
    call=lambda backend: lambda x, b: ops.bias_lrelu_pixel_norm(x, b, scale=0.5, gain=math.sqrt(2),
                                                                backend=backend),
    min_bytes=lambda ins, mode: PASSES[mode] * tensor_bytes(ins[0]),
)

if __name__ == "__main__":
    main(BENCH)
