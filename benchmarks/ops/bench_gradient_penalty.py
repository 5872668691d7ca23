"""Benchmark gradient_penalty: python -m benchmarks.ops.bench_gradient_penalty"""

import pygan.ops as ops
from benchmarks.ops._bench import OpBench, tensor_bytes
from benchmarks.ops.bench_pixel_norm import inputs
from benchmarks.ops.cli import main

# forward reads grad once; backward reads it again and writes d grad (first order only)
PASSES = {"fwd": 1, "fwd+bwd": 3}

BENCH = OpBench(
    name="gradient_penalty",
    inputs=inputs,
    call=lambda backend: lambda g: ops.gradient_penalty(g, backend=backend),
    min_bytes=lambda ins, mode: PASSES[mode] * tensor_bytes(ins[0]),
    modes=("fwd", "fwd+bwd"),
)

if __name__ == "__main__":
    main(BENCH)
