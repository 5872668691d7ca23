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


def test_compile_provider_compiles_every_case(monkeypatch):
    """Each case timed as "compile" runs a graph Dynamo compiled for it. The cases share one
    reference function (one code object), so without a fresh Dynamo state per case the ninth
    guard set would hit the recompile limit and the "compile" timing would silently be eager.
    (Not a timing: a counting Dynamo backend records the graphs compiled.)"""
    graphs = []

    def counting_backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: real_compile(fn, backend=counting_backend))
    bench = next(b for b in ALL if b.name == "pixel_norm")
    cases = [(shape, dtype) for dtype in (torch.float32, torch.float64, torch.bfloat16)
             for shape in ((2, 3), (2, 3, 4), (2, 3, 4, 4), (2, 3, 2, 2, 2))]   # 12 guard sets
    assert len(cases) > torch._dynamo.config.recompile_limit
    for shape, dtype in cases:
        before = len(graphs)
        inputs = bench.inputs(shape, dtype, torch.device("cpu"), False)
        _bench._workload(_bench.provider_fn(bench, "compile"), inputs, "fwd")()
        assert len(graphs) > before, f"case {shape} {dtype} ran without a compiled graph"
