"""scripts/gpu_check.sh end to end in its CPU dry-run mode (GPU_CHECK_DRY_RUN=1), and the SIGINT
paths of the benchmark runners: the plumbing a GPU session depends on, proven on the CPU."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = {"gpu-summary.json", "gpu-check.log", "gpu-tests.xml", "ops-bench.json", "progan-step.json",
           "cyclegan-step.json", "accelerate.json"}
STAGES = ["start", "build", "probe", "tests", "ops_bench", "progan_step", "cyclegan_step", "accelerate", "end"]


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "OUT")}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-out")
    budget = 70
    t0 = time.monotonic()
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "commit-under-test"],
                          env=_env(OUT=str(out), GPU_CHECK_DRY_RUN="1", GPU_CHECK_BUDGET_S=str(budget),
                                   GPU_CHECK_TESTS="tests/scripts/_slow_suite.py", PYTHON=sys.executable),
                          capture_output=True, text=True, timeout=budget + 60)
    return dict(out=out, wall=time.monotonic() - t0, budget=budget, done=done,
                summary=json.loads((out / "gpu-summary.json").read_text()))


def test_dry_run_respects_the_deadline_and_the_file_limit(dry_run):
    assert dry_run["done"].returncode == 0, dry_run["done"].stderr[-2000:]
    assert dry_run["wall"] <= dry_run["budget"] + 10, dry_run["done"].stdout[-3000:]
    files = {p.name for p in dry_run["out"].iterdir()}
    assert len(files) <= 7 and files <= ALLOWED, files
    assert dry_run["summary"]["seconds_left_at_last_write"] >= -5


def test_summary_is_rewritten_after_every_stage_and_names_commit_and_backends(dry_run):
    s = dry_run["summary"]
    assert s["commit"] == "commit-under-test" and s["dry_run"] is True
    assert [h["stage"] for h in s["history"]] == STAGES
    assert list(s["stages"]) == STAGES
    assert s["available_backends"]["cpp"]["available"] and s["available_backends"]["reference"]["available"]
    assert s["stages"]["build"]["status"] == "done"
    # the probe writes the backends first, then the self-test (which a loaded machine may cut)
    assert s["stages"]["probe"]["status"] in ("done", "interrupted")
    if s["stages"]["probe"]["status"] == "done":
        assert s["selftest"]["backends"] and not s["selftest"]["failures"], s["selftest"]


def test_interrupted_tests_keep_their_junit_results(dry_run):
    s = dry_run["summary"]
    assert s["stages"]["tests"]["status"] == "interrupted"
    assert (dry_run["out"] / "gpu-tests.xml").is_file(), dry_run["done"].stdout[-3000:]
    assert s["tests"]["passed"] == 2, s["tests"]


def test_benches_that_ran_saved_their_rows(dry_run):
    s = dry_run["summary"]
    ran = [k for k in ("ops_bench", "progan_step", "cyclegan_step", "accelerate") if s["stages"][k]["status"] != "skipped"]
    assert ran, s["stages"]
    for key in ran:
        if s["stages"][key]["status"] == "done":
            assert s[key]["complete"] and s[key]["rows"] > 0, (key, s.get(key))


def _interrupt_after_first_rows(cmd, out: Path, timeout=90):
    # SIGINT at its default in the child, as a foreground command has it, even where pytest was
    # started in the background with SIGINT ignored (which every child would inherit)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if out.exists() and json.loads(out.read_text())["rows"]:
                break
            if proc.poll() is not None:
                pytest.fail(f"finished before it could be interrupted: {proc.stdout.read()[-2000:]}")
            time.sleep(0.2)
        else:
            pytest.fail("no rows were saved in time")
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    data = json.loads(out.read_text())
    return rc, data, proc.stdout.read()


def test_op_bench_keeps_measured_rows_on_sigint(tmp_path):
    out = tmp_path / "ops.json"
    shapes = [a for s in ("2x8x8x8", "2x8x8x9", "2x8x8x10", "2x8x8x11", "2x8x8x12", "2x8x8x13") * 20
              for a in ("--shape", s)]
    rc, data, log = _interrupt_after_first_rows(
        [sys.executable, "-m", "benchmarks.ops.run", "--device", "cpu", "--provider", "reference",
         "--mode", "fwd", "--out", str(out), *shapes], out)
    assert rc == 130, log[-2000:]
    assert data["complete"] is False and data["rows"], log[-2000:]
    assert "interrupted: keeping" in log


def test_e2e_bench_keeps_measured_rows_on_sigint(tmp_path):
    out = tmp_path / "progan.json"
    rc, data, log = _interrupt_after_first_rows(
        [sys.executable, "-m", "benchmarks.e2e.bench_progan_step", "--device", "cpu", "--max-resolution", "256",
         "--fmap-base", "64", "--batch", "2", "--provider", "reference", "--out", str(out)], out)
    assert rc == 130, log[-2000:]
    assert data["complete"] is False and data["rows"][0]["resolution"] == 4
