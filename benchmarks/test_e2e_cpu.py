"""Smoke test of the end-to-end benchmarks: each ``run()`` at a tiny CPU configuration must give
one complete row per resolution and provider, with positive times. Nothing here asserts a speed.

    python -m pytest benchmarks/test_e2e_cpu.py -q

Not part of the test suite (testpaths is tests/). The providers are the eager reference and the
cpp backend where it is built; torch.compile is left to the command line, since compiling the
networks takes longer than this whole test should.
"""

import argparse

import pygan.ops as ops
from benchmarks.e2e import bench_cyclegan_step, bench_progan_step

PROVIDERS = ["reference"] + (["cpp"] if ops.available_backends()["cpp"] else [])
ROW_KEYS = {"bench", "resolution", "batch", "provider", "dtype", "channels_last", "seconds",
            "images_per_second", "peak_memory_bytes", "speedup_vs_reference"}


def check_rows(rows, bench, resolutions, batch, repeat=1):
    assert sorted((r["resolution"], r["provider"], r.get("repeat")) for r in rows) == sorted(
        (res, p, k if repeat > 1 else None) for res in resolutions for p in PROVIDERS for k in range(repeat))
    for r in rows:
        assert ROW_KEYS <= r.keys(), ROW_KEYS - r.keys()
        assert r["bench"] == bench and r["batch"] == batch and r["dtype"] == "float32"
        assert r["seconds"] > 0 and r["images_per_second"] > 0 and r["speedup_vs_reference"] > 0
        assert r["peak_memory_bytes"] is None   # measured on CUDA only


def test_progan_step():
    args = argparse.Namespace(device="cpu", max_resolution=8, fmap_base=64, fmap_max=512, batch=4,
                              dtype="float32", channels_last=False, provider=PROVIDERS, repeat=1)
    check_rows(bench_progan_step.run(args), "progan_step", [4, 8], 4)


def test_cyclegan_step():
    args = argparse.Namespace(device="cpu", resolution=[32], base_channels=8, num_blocks=1, batch=None,
                              dtype="float32", channels_last=False, provider=PROVIDERS, repeat=2)
    rows = bench_cyclegan_step.run(args)
    check_rows(rows, "cyclegan_step", [32], 1, repeat=2)
    for r in rows:   # each pass's ratio against that pass's own reference
        ref = next(x for x in rows if x["provider"] == "reference" and x["repeat"] == r["repeat"])
        assert r["speedup_vs_reference"] == ref["seconds"] / r["seconds"]
    assert all(r["base_channels"] == 8 and r["num_blocks"] == 1 for r in rows)
