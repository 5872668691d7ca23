"""Benchmark instance_norm_act against eager ``F.instance_norm`` + activation (+ add):
python -m benchmarks.ops.bench_instance_norm_act [--device cuda] [--channels-last]

Two cases: CycleGAN's ``InstanceNorm2d -> ReLU`` (``instance_norm_act``) and the ResNet block's
``x + InstanceNorm2d(h)`` (``instance_norm_act+res``). The ``reference`` provider is the eager
PyTorch the op replaces (``F.instance_norm`` then ``F.relu`` / the add), ``compile`` is
torch.compile of it, ``cpp`` / ``cuda`` / ``triton`` are pygan's kernels.
"""

import torch
import torch.nn.functional as F

import pygan.ops as ops
from benchmarks.ops._bench import OpBench, tensor_bytes
from benchmarks.ops.cli import parser, run_benches

#: the shapes of issue 13 (a 64x64 and a 128x128 CycleGAN feature map); GPUs add 256x256 at C = 64
SHAPES = {"cpu": [(1, 256, 64, 64), (4, 128, 128, 128)],
          "cuda": [(1, 256, 64, 64), (4, 128, 128, 128), (8, 64, 256, 256), (16, 256, 32, 32)]}


def inputs(shape, dtype, device, channels_last):
    x = torch.randn(shape, dtype=dtype, device=device)
    return [x.contiguous(memory_format=torch.channels_last) if channels_last else x]


def inputs_residual(shape, dtype, device, channels_last):
    return inputs(shape, dtype, device, channels_last) + inputs(shape, dtype, device, channels_last)


def eager_relu(x):
    return F.relu(F.instance_norm(x, eps=1e-5))


def eager_residual(h, x):
    return x + F.instance_norm(h, eps=1e-5)


def call_relu(backend):
    if backend == "reference":
        return eager_relu
    return lambda x: ops.instance_norm_act(x, activation="relu", backend=backend)


def call_residual(backend):
    if backend == "reference":
        return eager_residual
    return lambda h, x: ops.instance_norm_act(h, residual=x, backend=backend)


# passes over x: forward reads x, writes y; backward reads g and x, writes dx; the double
# backward reads h, g and x and writes dg and dx (the residual adds one read forward and a
# gradient that is g itself)
PASSES = {"fwd": 2, "fwd+bwd": 5, "double-bwd": 10}

BENCH = OpBench(
    name="instance_norm_act",
    inputs=inputs,
    call=call_relu,
    min_bytes=lambda ins, mode: PASSES[mode] * tensor_bytes(ins[0]),
)

BENCH_RESIDUAL = OpBench(
    name="instance_norm_act+res",
    inputs=inputs_residual,
    call=call_residual,
    min_bytes=lambda ins, mode: (PASSES[mode] + 1) * tensor_bytes(ins[0]),
)


def main():
    args = parser().parse_args()
    if not args.shape:
        args.shape = SHAPES[torch.device(args.device).type]
    run_benches([BENCH, BENCH_RESIDUAL], args)


if __name__ == "__main__":
    main()
