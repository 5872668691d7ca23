"""Turn the committed benchmark results (benchmarks/results/*.json) into PNG charts under
benchmarks/plots/: the speed-up of each backend over the eager reference per op and mode, and
images per second per resolution for the end-to-end ProGAN step.

    python -m benchmarks.plot
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parent
RESULTS, PLOTS = ROOT / "results", ROOT / "plots"
COLORS = {"reference": "#888888", "compile": "#4c72b0", "cpp": "#dd8452", "cuda": "#55a868", "triton": "#c44e52"}


def load(prefix: str) -> list[tuple[dict, list[dict]]]:
    runs = []
    for path in sorted(RESULTS.glob(f"{prefix}-*.json")):
        data = json.loads(path.read_text())
        runs.append((data["environment"], data["rows"]))
    return runs


def title_of(env: dict) -> str:
    commit = (env.get("git_commit") or "?")[:7]
    return f"{env['device']} · torch {env['torch']} · commit {commit} · {env['date'][:10]}"


def plot_ops(env: dict, rows: list[dict]) -> Path:
    """One bar group per (op, mode): each provider's speed-up over the eager reference, taken as
    the geometric mean over the run's shapes, dtypes and layouts."""
    ratios: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["provider"] != "reference" and r.get("speedup_vs_reference"):
            ratios[(r["op"], r["mode"])][r["provider"]].append(r["speedup_vs_reference"])
    groups = sorted(ratios)
    providers = [p for p in COLORS if any(p in ratios[g] for g in groups)]
    fig, ax = plt.subplots(figsize=(max(8, len(groups) * 0.9), 4.5))
    width = 0.8 / max(1, len(providers))
    for i, p in enumerate(providers):
        vals = []
        for g in groups:
            v = ratios[g].get(p, [])
            vals.append(math.exp(sum(map(math.log, v)) / len(v)) if v else 0.0)
        ax.bar([j + i * width for j in range(len(groups))], vals, width, label=p, color=COLORS[p])
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(groups))])
    ax.set_xticklabels([f"{op}\n{mode}" for op, mode in groups], fontsize=7, rotation=45, ha="right")
    ax.set_ylabel("speed-up over eager reference (×)")
    ax.set_title(f"pygan ops: {title_of(env)}", fontsize=9)
    ax.legend()
    fig.tight_layout()
    path = PLOTS / f"ops-speedup-{env['device_type']}.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_progan(env: dict, rows: list[dict]) -> Path:
    by_provider: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for r in rows:
        by_provider[r["provider"]].append((r["resolution"], r["images_per_second"]))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for p, pts in by_provider.items():
        pts.sort()
        ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", label=p, color=COLORS.get(p))
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("resolution")
    ax.set_ylabel("images / s (critic step with GP + generator step)")
    ax.set_title(f"ProGAN step: {title_of(env)}", fontsize=9)
    ax.legend()
    fig.tight_layout()
    path = PLOTS / f"progan-step-{env['device_type']}.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main() -> None:
    PLOTS.mkdir(exist_ok=True)
    written = []
    for env, rows in load("ops")[-2:]:
        written.append(plot_ops(env, rows))
    for env, rows in load("progan_step")[-2:]:
        written.append(plot_progan(env, rows))
    for path in written:
        print("wrote", path.relative_to(ROOT.parent))
    if not written:
        print("no results under benchmarks/results/ yet")


if __name__ == "__main__":
    main()
