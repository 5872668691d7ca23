"""The summary JSON of ``scripts/gpu_check.sh``, rewritten after every stage.

    python scripts/gpu_summary.py probe --work DIR --device cuda      # versions, backends, selftest
    python scripts/gpu_summary.py update --out OUT --work DIR --commit C --stage NAME --status S \
        --rc N --seconds T [--deadline EPOCH]

``probe`` imports pygan (once) and writes DIR/probe.json: device, torch/triton/CUDA versions,
``pygan.ops.available_backends()`` with reasons, and the ops self-test's table. ``update`` needs
only the standard library (fast): it records the stage, re-reads what the stages left (probe.json,
the pytest junit XML, the benchmark JSONs under OUT) and rewrites OUT/gpu-summary.json
atomically, appending the stage to ``history`` so a reader can see it was rewritten each time.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # pygan from this checkout

SUMMARY = "gpu-summary.json"
TESTS_XML = "gpu-tests.xml"
BENCH_FILES = {"ops_bench": "ops-bench.json", "progan_step": "progan-step.json",
               "cyclegan_step": "cyclegan-step.json", "accelerate": "accelerate.json"}


def probe(work: Path, device: str, only_ops: list[str] | None = None) -> int:
    import torch

    import pygan.ops as ops
    info = dict(device=torch.cuda.get_device_name(0) if device == "cuda" and torch.cuda.is_available() else device,
                torch=torch.__version__, cuda=torch.version.cuda)
    try:
        import triton
        info["triton"] = triton.__version__
    except ImportError:
        info["triton"] = None
    info["available_backends"] = {k: dict(available=bool(v), reason=v.reason)
                                  for k, v in ops.available_backends().items()}
    work.mkdir(parents=True, exist_ok=True)
    (work / "probe.json").write_text(json.dumps(info, indent=1))      # saved before the self-test
    try:
        report = ops.selftest(device, ops=only_ops, use_cache=False)
        info["selftest"] = dict(seconds=report["seconds"], backends=report["backends"],
                                failures=[f"{r['case']} {r['backend']} {r['layout']}: {r['reason']}"
                                          for r in report["results"] if not r["ok"]],
                                table=ops.selftest.format_table(report).splitlines())
        print(ops.selftest.format_table(report))
    except Exception as exc:  # noqa: BLE001 - recorded, the other stages still run
        info["selftest"] = dict(error=f"{type(exc).__name__}: {exc}"[:1000])
    (work / "probe.json").write_text(json.dumps(info, indent=1))
    return 1 if info["selftest"].get("failures") or info["selftest"].get("error") else 0


def junit(path: Path) -> dict:
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError:
        return dict(error="no junit XML (the tests did not run, or were killed before writing it)")
    except ET.ParseError as exc:
        return dict(error=f"unreadable junit XML: {exc}")
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    failed = []
    for case in root.iter("testcase"):
        for bad in list(case.findall("failure")) + list(case.findall("error")):
            failed.append(dict(test=f"{case.get('classname')}::{case.get('name')}",
                               message=(bad.get("message") or "")[:300]))
    return dict(**counts, failed_tests=failed[:40], failed_tests_total=len(failed))


def bench(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return dict(file=path.name, rows=len(data.get("rows", [])), complete=data.get("complete"))


def update(args) -> int:
    out, work = Path(args.out), Path(args.work)
    path = out / SUMMARY
    try:
        summary = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        summary = dict(commit=args.commit, started=_now(), stages={}, history=[])
    summary["commit"] = args.commit
    summary["dry_run"] = os.environ.get("GPU_CHECK_DRY_RUN") == "1"
    if args.stage:
        summary["stages"][args.stage] = dict(status=args.status, rc=args.rc, seconds=args.seconds)
        summary["history"].append(dict(stage=args.stage, status=args.status, written=_now()))
    try:
        summary.update(json.loads((work / "probe.json").read_text()))
    except (FileNotFoundError, ValueError):
        pass
    if (out / TESTS_XML).exists() or "tests" in summary["stages"]:
        summary["tests"] = junit(out / TESTS_XML)
    for key, name in BENCH_FILES.items():
        found = bench(out / name)
        if found is not None:
            summary[key] = found
    if args.deadline:
        summary["seconds_left_at_last_write"] = round(args.deadline - time.time(), 1)
    summary["updated"] = _now()
    tmp = path.with_name(SUMMARY + ".tmp")
    tmp.write_text(json.dumps(summary, indent=1))
    tmp.replace(path)
    return 0


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    pr = sub.add_parser("probe")
    pr.add_argument("--work", type=Path, required=True)
    pr.add_argument("--device", default="cuda")
    pr.add_argument("--op", action="append", help="self-test only these ops (the dry run's budget)")
    up = sub.add_parser("update")
    up.add_argument("--out", required=True)
    up.add_argument("--work", required=True)
    up.add_argument("--commit", required=True)
    up.add_argument("--stage")
    up.add_argument("--status", default="done")
    up.add_argument("--rc", type=int)
    up.add_argument("--seconds", type=float)
    up.add_argument("--deadline", type=float)
    args = p.parse_args(argv)
    return probe(args.work, args.device, args.op) if args.cmd == "probe" else update(args)


if __name__ == "__main__":
    sys.exit(main())
