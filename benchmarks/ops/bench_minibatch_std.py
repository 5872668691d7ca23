"""Benchmark minibatch_std: python -m benchmarks.ops.bench_minibatch_std [--device cuda]"""

import pygan.ops as ops
from benchmarks.ops._bench import OpBench, tensor_bytes
from benchmarks.ops.bench_pixel_norm import inputs
from benchmarks.ops.cli import main

# forward reads x, writes out (about x); backward reads grad (about x) and x, writes dx;
# double backward reads h, grad and x, writes dgrad and dx
PASSES = {"fwd": 2, "fwd+bwd": 5, "double-bwd": 10}

BENCH = OpBench(
    name="minibatch_std",
    inputs=inputs,
    call=lambda backend: lambda x: ops.minibatch_std(x, group_size=4, backend=backend),
    min_bytes=lambda ins, mode: PASSES[mode] * tensor_bytes(ins[0]),
)

if __name__ == "__main__":
    main(BENCH)
