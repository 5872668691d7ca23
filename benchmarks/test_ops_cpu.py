"""The op benchmarks through pytest-benchmark, at reduced CPU sizes:

    python -m pytest benchmarks --benchmark-only [--benchmark-group-by=param:op]

One benchmark per op, mode and provider (reference, torch.compile of the reference, cpp), so
pytest-benchmark's table compares the providers side by side. Not part of the test suite
(testpaths is tests/), and nothing here asserts a time.
"""

import pytest
import torch

import pygan.ops as ops
from benchmarks.ops import _bench
from benchmarks.ops.run import ALL

SHAPE = (8, 64, 16, 16)
PROVIDERS = ["reference", "compile", "cpp"]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("mode", _bench.MODES)
@pytest.mark.parametrize("op", [b.name for b in ALL])
def test_op(benchmark, op, mode, provider):
    bench = next(b for b in ALL if b.name == op)
    if mode not in bench.modes:
        pytest.skip(f"{op} has no {mode} mode (first-order gradients only)")
    if provider == "compile" and mode == "double-bwd":
        pytest.skip("torch.compile cannot differentiate twice (DESIGN.md §3)")
    if provider == "cpp" and not ops.available_backends()["cpp"]:
        pytest.skip("cpp backend unavailable: " + ops.available_backends()["cpp"].reason)
    inputs = bench.inputs(SHAPE, torch.float32, torch.device("cpu"), False)
    fn = _bench._workload(_bench.provider_fn(bench, provider), inputs, mode)
    fn()
    benchmark.extra_info.update(bytes=bench.min_bytes(inputs, mode))
    benchmark(fn)
