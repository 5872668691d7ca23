#!/usr/bin/env bash
# On a GPU machine: build pygan from source against the torch installed there, run every test
# marked `gpu`, run the GPU op benchmarks and the end-to-end ProGAN / CycleGAN steps, and write a
# summary JSON (counts, failures, device, torch/triton/CUDA versions, git commit) plus the
# benchmark JSON to $OUT (default: ./gpu-out).
#
#   bash scripts/gpu_check.sh [COMMIT]      # COMMIT: recorded when the tree has no .git
#   OPS_S=300 E2E_S=240 bash scripts/gpu_check.sh   # time boxes of the benchmark stages (seconds)
#
# Back home: copy $OUT/*.json (but gpu-summary.json as gpu-summary-<date>.json) into
# benchmarks/results/, then `python -m benchmarks.select_gpu_backends` and `python -m benchmarks.plot`.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
COMMIT=${1:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
export PYTHONUNBUFFERED=1 TORCHINDUCTOR_AUTOGRAD_CACHE=0

echo "== build (pip install --no-build-isolation -e .)"
start=$(date +%s)
python3 -m pip install --no-build-isolation --no-deps -e . > "$OUT/build.log" 2>&1
build_rc=$?
echo "build rc=$build_rc in $(( $(date +%s) - start )) s"
tail -n 5 "$OUT/build.log"

echo "== pytest -m gpu"
python3 -m pytest -m gpu tests -q -p no:cacheprovider --junitxml="$OUT/gpu-tests.xml" 2>&1 | tee "$OUT/gpu-tests.log" | tail -n 30
test_rc=${PIPESTATUS[0]}

echo "== op benchmarks"
timeout "${OPS_S:-420}" python3 -m benchmarks.ops.run --device cuda --dtype bfloat16 --dtype float32 --channels-last --save \
    2>&1 | tee "$OUT/bench.log" | tail -n 60

echo "== end-to-end steps (bf16 + channels_last, paper widths)"
timeout "${E2E_S:-240}" python3 -m benchmarks.e2e.bench_progan_step --device cuda --dtype bfloat16 --channels-last --save \
    2>&1 | tee "$OUT/bench-progan.log" | tail -n 12
timeout "${E2E_S:-240}" python3 -m benchmarks.e2e.bench_cyclegan_step --device cuda --dtype bfloat16 --channels-last --save \
    2>&1 | tee "$OUT/bench-cyclegan.log" | tail -n 6
cp benchmarks/results/ops-cuda-*.json benchmarks/results/progan_step-cuda-*.json \
   benchmarks/results/cyclegan_step-cuda-*.json "$OUT/" 2>/dev/null

python3 - "$OUT" "$COMMIT" "$build_rc" "$test_rc" <<'PY'
import json, sys, datetime, xml.etree.ElementTree as ET
out, commit, build_rc, test_rc = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
import torch
try:
    import triton; triton_version = triton.__version__
except ImportError:
    triton_version = None
summary = dict(commit=commit, date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               device=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
               torch=torch.__version__, triton=triton_version, cuda=torch.version.cuda,
               build_rc=build_rc, pytest_rc=test_rc, tests={}, failures=[])
try:
    root = ET.parse(f"{out}/gpu-tests.xml").getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    t = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    t["passed"] = t["tests"] - t["failures"] - t["errors"] - t["skipped"]
    summary["tests"] = t
    for case in suite.iter("testcase"):
        for bad in list(case.findall("failure")) + list(case.findall("error")):
            summary["failures"].append(dict(test=f"{case.get('classname')}::{case.get('name')}",
                                            message=(bad.get("message") or "")[:500]))
except (OSError, ET.ParseError) as exc:
    summary["tests"] = dict(error=f"no junit xml: {exc}")
with open(f"{out}/gpu-summary.json", "w") as f:
    json.dump(summary, f, indent=1)
print(json.dumps({k: summary[k] for k in ("device", "torch", "triton", "cuda", "tests")}, indent=1))
PY
