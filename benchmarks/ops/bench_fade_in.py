"""Benchmark fade_in (low at half resolution): python -m benchmarks.ops.bench_fade_in

Two cases: the paper's linear blend (``fade_in``) and the ProGAN tutorial's
``tanh(alpha * high + (1 - alpha) * up(low))`` (``fade_in+tanh``, ``activation="tanh"``), whose
``reference`` provider is that eager PyTorch expression.
"""

import torch

import pygan.ops as ops
from benchmarks.ops._bench import OpBench, tensor_bytes
from benchmarks.ops.cli import parser, run_benches


def inputs(shape, dtype, device, channels_last):
    n, c, h, w = shape
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    high = torch.randn(shape, dtype=dtype, device=device).contiguous(memory_format=fmt)
    low = torch.randn(n, c, h // 2, w // 2, dtype=dtype, device=device).contiguous(memory_format=fmt)
    return [low, high]


# in units of high: forward reads low (1/4) and high, writes out; backward reads g, writes
# d_low (1/4) and d_high; the double backward reads h_low, h_high and writes dg
PASSES = {"fwd": 2.25, "fwd+bwd": 4.5, "double-bwd": 6.75}
# with tanh the backward also reads the output y (fwd+bwd: 2.25 + 3.25); the double backward adds
# reading h_low, h_high, g and y and writing dg and dy (5.25), and dy going back through the
# first backward (reads dy and y, writes d_low and d_high: 3.25): 5.5 + 8.5
PASSES_TANH = {"fwd": 2.25, "fwd+bwd": 5.5, "double-bwd": 14.0}

BENCH = OpBench(
    name="fade_in",
    inputs=inputs,
    call=lambda backend: lambda low, high: ops.fade_in(low, high, 0.3, backend=backend),
    min_bytes=lambda ins, mode: int(PASSES[mode] * tensor_bytes(ins[1])),
)

BENCH_TANH = OpBench(
    name="fade_in+tanh",
    inputs=inputs,
    call=lambda backend: lambda low, high: ops.fade_in(low, high, 0.3, activation="tanh", backend=backend),
    min_bytes=lambda ins, mode: int(PASSES_TANH[mode] * tensor_bytes(ins[1])),
)


def main():
    run_benches([BENCH, BENCH_TANH], parser().parse_args())


if __name__ == "__main__":
    main()
