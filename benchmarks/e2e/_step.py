"""What the end-to-end benchmarks share: timing one training step per provider at one
resolution, peak memory, and the ratios to the eager reference."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch

import pygan.ops as ops
from benchmarks.ops import _bench, cli

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def parser(doc: str) -> argparse.ArgumentParser:
    """The options every end-to-end bench has (device, dtype, layout, providers, --save); each
    bench adds its model's own."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", choices=list(DTYPES), default="float32")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--provider", action="append", choices=["reference", "compile", "cpp", "cuda", "triton"])
    p.add_argument("--save", action="store_true", help="write a JSON file under benchmarks/results/")
    p.add_argument("--out", type=Path, help="rewrite this JSON file after every resolution, so an "
                   "interrupted run (SIGINT, a time box) keeps what it measured")
    return p


def add_repeat(p: argparse.ArgumentParser) -> None:
    """``--repeat N`` of the benches that time providers with :func:`time_providers`."""
    p.add_argument("--repeat", type=cli.positive_int, default=1, metavar="N",
                   help="time every provider N times, in N passes over the providers (rows carry "
                   "their 'repeat' index, each pass's ratios use its own reference, and the run ends "
                   "with each ratio's min / median / max): one CPU pass on a shared VM varies by "
                   "+-15%%")


def save(name: str, rows: list[dict], device) -> None:
    """Append the run to benchmarks/results/ as ``<name>-<device type>-<date>.json``."""
    print("wrote", _bench.write_results(name, rows, cli.environment(device)))


def run_and_save(name: str, run: Callable[[Callable[[list[dict]], None]], list[dict]], args) -> list[dict]:
    """``run(progress)`` with ``progress(rows)`` rewriting ``args.out`` after every resolution;
    SIGINT (KeyboardInterrupt) keeps the rows measured so far, saves them and exits with 130."""
    env = cli.environment(args.device)
    done: list[dict] = []

    def progress(rows):
        done[:] = rows
        if args.out:
            cli.write_rows(args.out, add_ratios([dict(r) for r in rows]), env, complete=False)

    try:
        rows = run(progress)
    except KeyboardInterrupt:
        print(f"interrupted: keeping the {len(done)} rows measured", file=sys.stderr)
        if args.out:
            cli.write_rows(args.out, add_ratios([dict(r) for r in done]), env, complete=False)
        sys.exit(130)
    print_spread(rows)
    if args.out:
        cli.write_rows(args.out, rows, env, complete=True)
        print("wrote", args.out)
    if args.save:
        save(name, rows, args.device)
    return rows


def default_providers(device: torch.device) -> list[str]:
    """The eager reference, torch.compile of it, and the fused backends that run on ``device``."""
    fused = ["cpp"] if device.type == "cpu" else ["cuda", "triton"]
    return ["reference", "compile", *(b for b in fused if ops.available_backends()[b])]


def peak_memory(fn: Callable[[], None], device) -> int | None:
    """Peak CUDA memory allocated by one call of ``fn`` (None off the GPU)."""
    if torch.device(device).type != "cuda":
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated()


def time_providers(providers: list[str], make_step: Callable[[str], Callable[[], None]], device,
                   label: str, batch: int, repeat: int = 1, **fields) -> list[dict]:
    """Rows for the providers that run: the median time of ``make_step(provider)()``, images per
    second for ``batch`` images, peak memory, plus ``fields``; prints a line for ``label`` per pass.
    With ``repeat`` > 1, ``repeat`` passes each time every provider once (in turn, so a drift of the
    machine reaches them all) and every row carries its pass as ``repeat``."""
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    steps = {p: make_step(p) for p in providers}
    failed: set[str] = set()
    rows = []
    for r in range(repeat):
        times = {}
        for p, fn in steps.items():
            if p in failed:
                continue
            try:
                t = _bench.median_seconds(fn, device)
            except Exception as exc:  # noqa: BLE001 - a provider that cannot run is reported, not fatal
                print(f"  {label} {p}: skipped ({type(exc).__name__}: {exc})"[:200])
                failed.add(p)
                continue
            times[p] = t
            row = dict(provider=p, batch=batch, seconds=t, images_per_second=batch / t,
                       peak_memory_bytes=peak_memory(fn, device), **fields)
            rows.append(dict(row, repeat=r) if repeat > 1 else row)
        line = "  ".join(f"{p} {batch / t:9.2f} img/s" for p, t in times.items())
        if "reference" in times:
            line += "  |  " + "  ".join(f"{p} {times['reference'] / t:.2f}x" for p, t in times.items() if p != "reference")
        print(f"{label}: {line}")
    return rows


def add_ratios(rows: list[dict]) -> list[dict]:
    """``speedup_vs_reference`` and ``memory_vs_reference`` against the reference row of the same
    resolution and pass (None where there is no reference row or no memory figure)."""
    for r in rows:
        ref = next((x for x in rows if x["resolution"] == r["resolution"] and x.get("repeat") == r.get("repeat")
                    and x["provider"] == "reference"), None)
        r["speedup_vs_reference"] = ref["seconds"] / r["seconds"] if ref else None
        r["memory_vs_reference"] = (r["peak_memory_bytes"] / ref["peak_memory_bytes"]
                                    if ref and ref["peak_memory_bytes"] and r["peak_memory_bytes"] else None)
    return rows


def print_spread(rows: list[dict]) -> None:
    """Each provider's speed-up over the reference per resolution: min / median / max over the
    passes (nothing to print for a single pass)."""
    import statistics
    by_case: dict[tuple, list[float]] = {}
    for r in rows:
        if "repeat" in r and r["provider"] != "reference" and r.get("speedup_vs_reference"):
            by_case.setdefault((r["resolution"], r["provider"]), []).append(r["speedup_vs_reference"])
    for (res, p), xs in by_case.items():
        print(f"{res:>5}^2 {p:<10} speed-up min / median / max: "
              f"{min(xs):.2f} / {statistics.median(xs):.2f} / {max(xs):.2f} ({len(xs)} passes)")
