"""Command line of the op benchmarks.

    python -m benchmarks.ops.run                      # every op, CPU, issue-2 shape
    python -m benchmarks.ops.bench_pixel_norm --device cuda --dtype bfloat16 --save
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.ops import _bench

DEFAULT_SHAPES = {"cpu": [(32, 256, 32, 32)],
                  "cuda": [(16, 512, 4, 4), (16, 512, 16, 16), (32, 256, 64, 64), (64, 64, 256, 256),
                           (64, 256, 64, 64)]}


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
    p.add_argument("--save", action="store_true", help="write a JSON file under benchmarks/results/")
    return p


def run_benches(benches, args) -> list[dict]:
    dev = torch.device(args.device)
    shapes = args.shape or DEFAULT_SHAPES[dev.type]
    dtypes = [getattr(torch, d) for d in (args.dtype or (["float32"] if dev.type == "cpu" else ["float32", "bfloat16"]))]
    bandwidth = _bench.copy_bandwidth(dev)
    print(f"device copy bandwidth: {bandwidth / 1e9:.1f} GB/s (read + write)")
    rows = []
    for bench in benches:
        modes = [m for m in (args.mode or bench.modes) if m in bench.modes]
        rows += _bench.run(bench, shapes, dtypes, device=dev, modes=modes, providers=args.provider,
                           channels_last=(False, True) if args.channels_last else (False,),
                           bandwidth=bandwidth)
    _bench.print_table(rows)
    if args.save:
        env = _bench.environment(args.device)
        env["copy_bandwidth_gbps"] = bandwidth / 1e9
        print("wrote", _bench.write_results("ops", rows, env))
    return rows


def main(bench) -> None:
    run_benches([bench], parser().parse_args())
