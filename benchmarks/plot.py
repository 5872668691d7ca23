"""Turn the committed benchmark results (benchmarks/results/*.json) into PNG charts under
benchmarks/plots/: the speed-up of each backend over the eager reference per op and mode, and
images per second per resolution for the end-to-end ProGAN and CycleGAN steps (per device type;
the ops from the newest run that measured each op, the steps from the newest run of each dtype /
channels_last config, named in the title or, when there are several, the legend; a run's
repeated passes as their median).

    python -m benchmarks.plot
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parent
RESULTS, PLOTS = ROOT / "results", ROOT / "plots"
COLORS = {"reference": "#888888", "compile": "#4c72b0", "cpp": "#dd8452", "cuda": "#55a868", "triton": "#c44e52"}
LINESTYLES = ["-", "--", ":", "-."]   # one per config (dtype, channels_last) in an end-to-end chart


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
    ax.set_yscale("log", base=2)   # ratios from 0.2x to 50x: equal steps for equal factors
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}×"))
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(groups))])
    ax.set_xticklabels([f"{op}\n{mode}" for op, mode in groups], fontsize=7, rotation=45, ha="right")
    ax.set_ylabel("speed-up over eager reference (log scale)")
    ax.set_title(f"pygan ops (newest run of each): {title_of(env)}", fontsize=9)
    ax.legend()
    return save(fig, f"ops-speedup-{env['device_type']}.png")


def rank(provider: str) -> int:
    return list(COLORS).index(provider) if provider in COLORS else len(COLORS)


def config_of(row: dict) -> str:
    return row["dtype"] + (" · channels_last" if row["channels_last"] else "")


def newest_per(runs: list[tuple[dict, list[dict]]], part_of) -> dict[str, tuple[dict, list[dict]]]:
    """Per device type: for each part of a result (``part_of(row)``), the rows of the newest run
    that measured it, merged, with the newest run's environment for the title."""
    newest: dict[tuple[str, str], tuple[dict, list[dict]]] = {}
    for env, rows in runs:
        for part in {part_of(r) for r in rows}:
            key = (env["device_type"], part)
            if key not in newest or env["date"] >= newest[key][0]["date"]:
                newest[key] = env, [r for r in rows if part_of(r) == part]
    merged: dict[str, tuple[dict, list[dict]]] = {}
    for (device_type, _), (env, rows) in sorted(newest.items()):
        old_env, old_rows = merged.get(device_type, (env, []))
        merged[device_type] = max(env, old_env, key=lambda e: e["date"]), old_rows + rows
    return merged


def newest_per_config(runs: list[tuple[dict, list[dict]]]) -> dict[str, tuple[dict, list[dict]]]:
    """The newest run of each (dtype, channels_last) config: one bench run holds one config, so
    fp32 and bf16 runs are separate files."""
    return newest_per(runs, config_of)


def newest_per_op(runs: list[tuple[dict, list[dict]]]) -> dict[str, tuple[dict, list[dict]]]:
    """The newest run that measured each op: a run may cover one op only (``bench_<op>.py``) or
    all of them."""
    return newest_per(runs, lambda r: r["op"])


def median_per_point(rows: list[dict], *keys: str) -> dict[tuple, float]:
    """Images per second per (keys…, config, provider), the median over a run's ``--repeat``
    passes (the last pass alone can be an outlier on a shared machine)."""
    values: dict[tuple, list[float]] = defaultdict(list)
    for r in rows:
        values[(*(r[k] for k in keys), config_of(r), r["provider"])].append(r["images_per_second"])
    return {k: statistics.median(v) for k, v in values.items()}


def config_labels(rows: list[dict]) -> tuple[list[str], str]:
    """The configs in ``rows``, and the title suffix naming it when there is only one (else the
    legend names them)."""
    configs = sorted({config_of(r) for r in rows})
    return configs, (f" · {configs[0]}" if len(configs) == 1 else "")


def plot_progan(env: dict, rows: list[dict]) -> Path:
    """Images per second per resolution: one line per provider (and per config, dashed for the
    second, when the chart holds several)."""
    configs, suffix = config_labels(rows)
    lines: dict[tuple[str, str], list[tuple[int, float]]] = defaultdict(list)
    for (resolution, config, provider), ips in median_per_point(rows, "resolution").items():
        lines[(provider, config)].append((resolution, ips))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (p, config), pts in sorted(lines.items(), key=lambda kv: (configs.index(kv[0][1]), rank(kv[0][0]))):
        pts.sort()
        label = p if suffix else f"{p} · {config}"
        ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", label=label, color=COLORS.get(p),
                linestyle=LINESTYLES[configs.index(config) % len(LINESTYLES)])
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("resolution")
    ax.set_ylabel("images / s (critic step with GP + generator step)")
    ax.set_title(f"ProGAN step{suffix}: {title_of(env)}", fontsize=9)
    ax.legend(fontsize=7)
    return save(fig, f"progan-step-{env['device_type']}.png")


def plot_cyclegan(env: dict, rows: list[dict]) -> Path:
    """Images per second as bars: one group per resolution (and config, when the chart holds
    several), one bar per provider."""
    configs, suffix = config_labels(rows)
    groups = sorted({(r["resolution"], config_of(r)) for r in rows}, key=lambda g: (configs.index(g[1]), g[0]))
    providers = [p for p in COLORS if any(r["provider"] == p for r in rows)]
    value = median_per_point(rows, "resolution")
    fig, ax = plt.subplots(figsize=(max(6, len(groups) * 1.6), 4.5))
    width = 0.8 / max(1, len(providers))
    for i, p in enumerate(providers):
        ax.bar([j + i * width for j in range(len(groups))], [value.get((*g, p), 0.0) for g in groups],
               width, label=p, color=COLORS[p])
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(groups))])
    ax.set_xticklabels([f"{res}²" + ("" if suffix else f"\n{config}") for res, config in groups], fontsize=8)
    ax.set_ylabel("images / s (generator step + discriminator step)")
    ax.set_title(f"CycleGAN step{suffix}: {title_of(env)}", fontsize=9)
    ax.legend()
    return save(fig, f"cyclegan-step-{env['device_type']}.png")


def save(fig, name: str) -> Path:
    fig.tight_layout()
    PLOTS.mkdir(exist_ok=True)
    path = PLOTS / name
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main() -> None:
    written = []
    for env, rows in newest_per_op(load("ops")).values():
        written.append(plot_ops(env, rows))
    for env, rows in newest_per_config(load("progan_step")).values():
        written.append(plot_progan(env, rows))
    for env, rows in newest_per_config(load("cyclegan_step")).values():
        written.append(plot_cyclegan(env, rows))
    for path in written:
        print("wrote", path.relative_to(ROOT.parent))
    if not written:
        print("no results under benchmarks/results/ yet")


if __name__ == "__main__":
    main()
