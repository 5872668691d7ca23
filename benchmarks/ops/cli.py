"""Command line of the op benchmarks.

    python -m benchmarks.ops.run                      # every op, CPU, issue-2 shape
    python -m benchmarks.ops.bench_pixel_norm --device cuda --dtype bfloat16 --save
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

from benchmarks.ops import _bench

DEFAULT_SHAPES = {"cpu": [(32, 256, 32, 32)],
                  "cuda": [(16, 512, 4, 4), (16, 512, 16, 16), (32, 256, 64, 64), (64, 64, 256, 256),
                           (64, 256, 64, 64)]}


def positive_int(text: str) -> int:
    """argparse type of counts such as --repeat: an int >= 1."""
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--shape", action="append", type=lambda s: tuple(int(v) for v in s.split("x")),
                   help="NxCxHxW; repeatable (default: per device)")
    p.add_argument("--dtype", action="append", choices=["float32", "bfloat16", "float16"],
                   help="repeatable (default: float32, plus bfloat16 on a GPU)")
    p.add_argument("--channels-last", action="store_true", help="also time channels_last inputs")
    p.add_argument("--mode", action="append", choices=list(_bench.MODES))
    p.add_argument("--provider", action="append",
                   choices=["reference", "compile", "cpp", "cuda", "triton"])
    p.add_argument("--repeat", type=positive_int, default=1, metavar="N",
                   help="time every case N times, one whole pass after another (rows carry their "
                   "'repeat' index; the table ends with each ratio's spread): single CPU runs on a "
                   "shared VM vary by +-20%%")
    p.add_argument("--save", action="store_true", help="write a JSON file under benchmarks/results/")
    p.add_argument("--out", type=Path, help="rewrite this JSON file after every case (shape x dtype), so "
                   "an interrupted run (SIGINT, a time box) keeps what it measured")
    return p


def environment(device) -> dict:
    """The results' environment; ``PYGAN_GIT_COMMIT`` names the commit where the tree has no .git
    (a GPU machine's copy)."""
    env = _bench.environment(str(device))
    env["git_commit"] = os.environ.get("PYGAN_GIT_COMMIT") or env["git_commit"]
    return env


def write_rows(path: Path, rows: list[dict], env: dict, complete: bool) -> None:
    """Write {environment, rows, complete} to ``path`` atomically (a reader never sees half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(dict(environment=env, complete=complete, rows=rows), indent=1, default=str))
    tmp.replace(path)


def run_benches(benches, args) -> list[dict]:
    repeats = getattr(args, "repeat", 1)
    if repeats < 1:
        raise SystemExit(f"--repeat must be >= 1, got {repeats}")
    dev = torch.device(args.device)
    shapes = args.shape or DEFAULT_SHAPES[dev.type]
    dtypes = [getattr(torch, d) for d in (args.dtype or (["float32"] if dev.type == "cpu" else ["float32", "bfloat16"]))]
    bandwidth = _bench.copy_bandwidth(dev)
    print(f"device copy bandwidth: {bandwidth / 1e9:.1f} GB/s (read + write)")
    env = environment(args.device)
    env["copy_bandwidth_gbps"] = bandwidth / 1e9
    if dev.type == "cpu":
        env.update(_bench.first_touch_cost())
        print(f"writing {env['first_touch_bytes'] >> 20} MiB: {env['first_touch_write_seconds'] * 1e3:.2f} ms into a new "
              f"tensor, {env['resident_write_seconds'] * 1e3:.2f} ms into a resident one")
    out = getattr(args, "out", None)
    rows = []
    interrupted = False
    try:
        for r in range(repeats):
            for bench in benches:
                modes = [m for m in (args.mode or bench.modes) if m in bench.modes]
                for shape in shapes:          # one case at a time, saved as soon as it is measured
                    for dtype in dtypes:
                        new = _bench.run(bench, [shape], [dtype], device=dev, modes=modes,
                                         providers=args.provider,
                                         channels_last=(False, True) if args.channels_last else (False,),
                                         bandwidth=bandwidth)
                        rows += [dict(row, repeat=r) for row in new] if repeats > 1 else new
                        if out:
                            write_rows(out, rows, env, complete=False)
    except KeyboardInterrupt:
        interrupted = True
        print(f"interrupted: keeping the {len(rows)} rows measured", file=sys.stderr)
    if out:
        write_rows(out, rows, env, complete=not interrupted)
        print("wrote", out)
    _bench.print_table(rows)
    if repeats > 1:
        _bench.print_spread(rows)
    if args.save:
        print("wrote", _bench.write_results("ops", rows, env))
    if interrupted:
        sys.exit(130)
    return rows


def main(bench) -> None:
    run_benches([bench], parser().parse_args())
