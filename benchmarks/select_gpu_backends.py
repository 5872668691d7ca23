"""Choose, per op, the faster GPU backend for ``auto`` from committed benchmark results.

    python -m benchmarks.select_gpu_backends [benchmarks/results/ops-cuda-*.json ...]

For every op, the backend (``cuda`` or ``triton``) with the lower geometric-mean time over the
cases both ran (all shapes, dtypes, layouts and modes) wins. The choice is written to
``pygan/ops/gpu_preference.json`` together with the result files it came from; the registry reads
it at import. Without results the file is absent and ``auto`` uses CUDA C++.
"""

from __future__ import annotations

import glob
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "pygan" / "ops" / "gpu_preference.json"


def choose(paths: list[str]) -> dict:
    times: dict[tuple, dict[str, float]] = defaultdict(dict)
    for path in paths:
        for row in json.loads(Path(path).read_text())["rows"]:
            if row["provider"] in ("cuda", "triton"):
                key = (row["op"], str(row["shape"]), row["dtype"], row["channels_last"], row["mode"])
                times[key][row["provider"]] = row["seconds"]
    log_ratio: dict[str, list[float]] = defaultdict(list)
    for (op, *_), by in times.items():
        if "cuda" in by and "triton" in by:
            log_ratio[op].append(math.log(by["triton"] / by["cuda"]))
    preference = {op: ("triton" if sum(r) / len(r) < 0 else "cuda") for op, r in log_ratio.items()}
    speedup = {op: math.exp(-sum(r) / len(r)) for op, r in log_ratio.items()}
    return dict(preference=preference, triton_speedup_over_cuda=speedup,
                sources=[str(Path(p).relative_to(ROOT)) if Path(p).is_absolute() else p for p in paths])


if __name__ == "__main__":
    files = sys.argv[1:] or sorted(glob.glob(str(ROOT / "benchmarks" / "results" / "ops-cuda-*.json")))
    if not files:
        sys.exit("no GPU benchmark results under benchmarks/results/: nothing to choose from")
    table = choose(files)
    TARGET.write_text(json.dumps(table, indent=1) + "\n")
    print(json.dumps(table, indent=1))
