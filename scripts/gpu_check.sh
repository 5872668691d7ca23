#!/usr/bin/env bash
# On a GPU machine, in one call that ends inside a global deadline (default 510 s, under the device
# tool's 10-minute command limit): build pygan, probe it (versions, available_backends(), the ops
# self-test), run the GPU tests in parallel with per-test timeouts, then small op and end-to-end
# benchmarks while time is left. Each stage is time boxed from what remains and stopped with
# SIGINT (then killed after a grace period), so pytest still writes its junit XML and the
# benchmarks keep the rows they measured (they save after every case). $OUT/gpu-summary.json is
# rewritten after every stage. At most 7 files land in $OUT (the device tool returns 8):
#   gpu-summary.json  gpu-check.log  gpu-tests.xml  ops-bench.json  progan-step.json  cyclegan-step.json
#   accelerate.json
#
#   bash scripts/gpu_check.sh [COMMIT]        # COMMIT: recorded (the GPU copy has no .git)
#   GPU_CHECK_BUDGET_S=300 bash scripts/gpu_check.sh abc123
#   GPU_CHECK_DRY_RUN=1 bash scripts/gpu_check.sh   # CPU plumbing check (CI runs it): tiny budget,
#       CPU device, Triton interpreted, a CPU test file in place of the GPU tests, tiny benches
#
# Back home: copy $OUT's benchmark JSONs into benchmarks/results/, then
# `python -m benchmarks.select_gpu_backends` and `python -m benchmarks.plot`.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/gpu-out}
mkdir -p "$OUT"
COMMIT=${1:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
DRY=${GPU_CHECK_DRY_RUN:-0}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
LOG="$OUT/gpu-check.log"
export PYTHONUNBUFFERED=1 TORCHINDUCTOR_AUTOGRAD_CACHE=0 PYGAN_GIT_COMMIT="$COMMIT"
PY=${PYTHON:-python3}

if [ "$DRY" = 1 ]; then
    # Boxes sized so that on a loaded 2-core machine (the test suite's other worker busy) the probe
    # (box + grace <= 16 s) still leaves the tests stage about 10 s for its two quick tests. With a
    # 60 s budget, a 20 s probe box and a 38 s reserve the stage got under 3 s, and was skipped, in
    # a full-suite run. The tests box is capped (TESTS_S) so that a quiet machine does not spend the
    # whole window waiting on the suite's endless test.
    BUDGET=${GPU_CHECK_BUDGET_S:-70}; GRACE=${GPU_CHECK_GRACE_S:-6}; RESERVE=3
    DEVICE=cpu
    export TRITON_INTERPRET=1 CUDA_VISIBLE_DEVICES=""
    BUILD_S=10; PROBE_S=10; TESTS_S=12; OPS_S=12; PROGAN_S=10; CYCLE_S=8; ACCEL_S=8; BENCH_RESERVE=30
    BUILD_CMD=("$PY" -c "print('dry run: no build (the checkout is already built)')")
    SELFTEST_ARGS=(--op pixel_norm --op fade_in)
    TEST_CMD=("$PY" -m pytest ${GPU_CHECK_TESTS:-tests/ops/test_triton_blocks.py} -q -p no:cacheprovider
              --junitxml="$OUT/gpu-tests.xml")
    OPS_CMD=("$PY" -m benchmarks.ops.run --device cpu --shape 2x8x8x8 --shape 4x16x16x16 --shape 8x32x16x16
             --dtype float32 --provider reference --provider cpp --out "$OUT/ops-bench.json")
    PROGAN_CMD=("$PY" -m benchmarks.e2e.bench_progan_step --device cpu --max-resolution 16 --fmap-base 64
                --batch 2 --provider reference --provider cpp --out "$OUT/progan-step.json")
    CYCLE_CMD=("$PY" -m benchmarks.e2e.bench_cyclegan_step --device cpu --resolution 24 --base-channels 4
               --num-blocks 1 --provider reference --provider cpp --out "$OUT/cyclegan-step.json")
    ACCEL_CMD=("$PY" -m benchmarks.e2e.bench_accelerate --device cpu --model mlp_gan --backend cpp
               --repeats 1 --out "$OUT/accelerate.json")
else
    BUDGET=${GPU_CHECK_BUDGET_S:-510}; GRACE=${GPU_CHECK_GRACE_S:-25}; RESERVE=5
    DEVICE=cuda
    BUILD_S=${BUILD_S:-240}; PROBE_S=${PROBE_S:-60}; TESTS_S=${TESTS_S:-100000}; OPS_S=${OPS_S:-35}; PROGAN_S=${PROGAN_S:-25}
    CYCLE_S=${CYCLE_S:-15}; ACCEL_S=${ACCEL_S:-35}; BENCH_RESERVE=${BENCH_RESERVE:-110}
    FUSED=(--provider reference --provider cuda --provider triton)   # torch.compile: too slow here
    export MAX_JOBS=${MAX_JOBS:-$(nproc)} FORCE_CUDA=1 CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
    export PYGAN_REQUIRE_BACKENDS=${PYGAN_REQUIRE_BACKENDS:-cuda,triton}   # a missing one fails the tests
    BUILD_CMD=("$PY" -m pip install --no-build-isolation --no-deps -e .)
    SELFTEST_ARGS=()
    XDIST=(); TIMEOUT=()
    "$PY" -c "import xdist" 2>/dev/null && XDIST=(-n "${GPU_CHECK_WORKERS:-8}")
    "$PY" -c "import pytest_timeout" 2>/dev/null && TIMEOUT=(--timeout "${GPU_CHECK_TEST_TIMEOUT_S:-120}")
    TEST_CMD=("$PY" -m pytest ${GPU_CHECK_TESTS:-tests/ops/test_gpu.py tests/ops/test_gpu_instance_norm_act.py tests/accelerate/test_gpu_accelerate.py} -m gpu -q -p no:cacheprovider
              "${XDIST[@]}" "${TIMEOUT[@]}" --junitxml="$OUT/gpu-tests.xml")
    OPS_CMD=("$PY" -m benchmarks.ops.run --device cuda --shape 16x512x16x16 --shape 16x128x64x64
             --shape 16x3x256x256 --dtype bfloat16 --dtype float32 --channels-last "${FUSED[@]}"
             --out "$OUT/ops-bench.json")
    PROGAN_CMD=("$PY" -m benchmarks.e2e.bench_progan_step --device cuda --dtype bfloat16 --channels-last
                --max-resolution 128 "${FUSED[@]}" --out "$OUT/progan-step.json")
    CYCLE_CMD=("$PY" -m benchmarks.e2e.bench_cyclegan_step --device cuda --dtype bfloat16 --channels-last
               --resolution 128 "${FUSED[@]}" --out "$OUT/cyclegan-step.json")
    # the seeds' own models, original vs pygan.accelerate (cuda and triton), bf16 autocast
    ACCEL_CMD=("$PY" -m benchmarks.e2e.bench_accelerate --device cuda --dtype bfloat16
               --out "$OUT/accelerate.json")
fi

START=$(date +%s)
DEADLINE=$((START + BUDGET))
left() { echo $((DEADLINE - $(date +%s))); }

summary() {   # summary STAGE STATUS RC SECONDS
    "$PY" scripts/gpu_summary.py update --out "$OUT" --work "$WORK" --commit "$COMMIT" --stage "$1" \
        --status "$2" --rc "$3" --seconds "$4" --deadline "$DEADLINE" >> "$LOG" 2>&1
}

# A shell that started this script in the background without job control (`cmd &` in a script,
# as CI runners and remote command tools do) leaves SIGINT ignored in every child, an ignored
# signal stays ignored across exec, and Python then never raises KeyboardInterrupt: the boxes'
# SIGINT would do nothing until the SIGKILL. Each stage's command is exec'd with SIGINT back at
# its default (bash itself cannot reset a signal it was started with ignored).
DEFAULT_SIGINT='import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])'

# stage NAME CAP_S [KEEP_S] -- CMD...: run CMD for at most CAP_S seconds and no later than
# KEEP_S seconds (plus the grace and the summary's reserve) before the deadline; SIGINT at the
# box's end, SIGKILL GRACE seconds later. Status: done, failed, interrupted, killed or skipped.
stage() {
    local name=$1 cap=$2 keep=$3; shift 4
    local box=$(( $(left) - keep - GRACE - RESERVE ))
    [ "$box" -gt "$cap" ] && box=$cap
    if [ "$box" -lt 3 ]; then
        echo "== $name: skipped ($(left) s left)" | tee -a "$LOG"
        summary "$name" skipped -1 0
        return
    fi
    echo "== $name (box ${box} s, $(left) s left): $*" | tee -a "$LOG"
    local t0=$(date +%s)
    timeout -s INT -k "$GRACE" "$box" "$PY" -c "$DEFAULT_SIGINT" "$@" >> "$LOG" 2>&1
    local rc=$? status=done
    case $rc in
        0) status=done ;;
        124) status=interrupted ;;
        137) status=killed ;;
        *) status=failed ;;
    esac
    local secs=$(( $(date +%s) - t0 ))
    echo "== $name: $status (rc $rc) in ${secs} s" | tee -a "$LOG"
    summary "$name" "$status" "$rc" "$secs"
}

echo "gpu_check: commit $COMMIT, budget ${BUDGET} s, dry run $DRY, out $OUT" | tee "$LOG"
summary start done 0 0

stage build "$BUILD_S" "$BENCH_RESERVE" -- "${BUILD_CMD[@]}"
stage probe "$PROBE_S" "$BENCH_RESERVE" -- "$PY" scripts/gpu_summary.py probe --work "$WORK" --device "$DEVICE" \
    "${SELFTEST_ARGS[@]}"
stage tests "$TESTS_S" "$BENCH_RESERVE" -- "${TEST_CMD[@]}"
stage ops_bench "$OPS_S" 0 -- "${OPS_CMD[@]}"
stage progan_step "$PROGAN_S" 0 -- "${PROGAN_CMD[@]}"
stage cyclegan_step "$CYCLE_S" 0 -- "${CYCLE_CMD[@]}"
stage accelerate "$ACCEL_S" 0 -- "${ACCEL_CMD[@]}"

summary end done 0 $(( $(date +%s) - START ))
rm -rf "$WORK"
echo "gpu_check: finished in $(( $(date +%s) - START )) s of ${BUDGET} s; files in $OUT: $(ls "$OUT" | tr '\n' ' ')" | tee -a "$LOG"
"$PY" -c "import json,sys; s=json.load(open(sys.argv[1])); print(json.dumps({k: s.get(k) for k in ('device','torch','triton','cuda','tests','stages')}, indent=1))" "$OUT/gpu-summary.json"
