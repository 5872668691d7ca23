"""Shared machinery of the op benchmarks: providers, modes, timing, and result rows.

Providers: ``reference`` (eager PyTorch), ``compile`` (torch.compile of the reference, where it
can run), and the compiled backends ``cpp`` (CPU), ``cuda`` and ``triton`` (GPU).
Modes: ``fwd``; ``fwd+bwd`` (forward, then backward of <out, g>); ``double-bwd`` (the
gradient-penalty pattern: grad with create_graph, then backward of the squared gradients to the
inputs and to g), which torch.compile cannot run.

Timing: on a GPU, ``triton.testing.do_bench`` medians; on the CPU, torch.utils.benchmark's
``blocked_autorange`` medians. Achieved bandwidth counts the fewest bytes each op must move
(``OpBench.min_bytes``: each input read once, each output written once).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import platform
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

import pygan.ops as ops

RESULTS_DIR = Path(__file__).resolve().parents[1] / "results"
MODES = ("fwd", "fwd+bwd", "double-bwd")


@dataclasses.dataclass
class OpBench:
    """How to benchmark one op.

    inputs(shape, dtype, device, channels_last) -> list of tensors (the differentiable ones)
    call(backend) -> f(*inputs) -> tensor; backend "reference" gives the eager reference
    min_bytes(inputs, mode) -> bytes the op must move at the least in that mode
    """

    name: str
    inputs: Callable[..., list[torch.Tensor]]
    call: Callable[[str], Callable[..., torch.Tensor]]
    min_bytes: Callable[[list[torch.Tensor], str], int]
    modes: Sequence[str] = ("fwd", "fwd+bwd", "double-bwd")


def tensor_bytes(*ts: torch.Tensor) -> int:
    return sum(t.numel() * t.element_size() for t in ts)


def _workload(fn, inputs, mode):
    """A zero-argument callable running ``fn`` on ``inputs`` in ``mode``."""
    leaves = [t.detach().requires_grad_(mode != "fwd") for t in inputs]
    if mode == "fwd":
        return lambda: fn(*leaves)
    out = fn(*leaves)
    cot = torch.randn_like(out)
    if mode == "fwd+bwd":
        return lambda: torch.autograd.grad(fn(*leaves), leaves, cot)

    # as in a gradient penalty, the incoming gradient depends on the parameters: the second
    # backward reaches the cotangent too (for a linear op such as fade_in it reaches nothing else)
    cot.requires_grad_(True)

    def double_backward():
        out = fn(*leaves)
        grads = torch.autograd.grad(out, leaves, cot, create_graph=True)
        return torch.autograd.grad(sum(g.square().sum() for g in grads), [*leaves, cot], allow_unused=True)
    return double_backward


def median_seconds(fn, device: torch.device) -> float:
    if device.type == "cuda":
        import triton.testing
        return triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median") / 1e3
    import torch.utils.benchmark as tb
    fn()  # warm-up (first call may build caches)
    # all threads (Timer's default is one), and the same count every call: a changing thread
    # count is global state that makes torch.compile recompile
    timer = tb.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    return timer.blocked_autorange(min_run_time=0.4).median


def copy_bandwidth(device: torch.device, nbytes: int = 1 << 30) -> float:
    """Bytes per second of a large device copy (bytes read + bytes written)."""
    n = nbytes // 4 if device.type == "cuda" else nbytes // 16
    src = torch.empty(n, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    t = median_seconds(lambda: dst.copy_(src), device)
    return 2 * src.numel() * 4 / t


def first_touch_cost(nbytes: int = 32 << 20) -> dict:
    """CPU only: seconds to write ``nbytes`` into a new tensor (its pages are mapped and zeroed by
    the OS on first touch) and into one already written (resident pages). Every op output is a
    new tensor, so on the CPU the difference is a cost per output that no kernel controls: glibc
    maps each block over 32 MiB afresh, and a VM can make the faults cost many times the writes."""
    n = nbytes // 4
    resident = torch.empty(n)
    resident.fill_(0)
    fresh = median_seconds(lambda: torch.empty(n).fill_(1), torch.device("cpu"))
    rewrite = median_seconds(lambda: resident.fill_(1), torch.device("cpu"))
    return dict(first_touch_bytes=nbytes, first_touch_write_seconds=fresh, resident_write_seconds=rewrite)


def providers_for(device: torch.device) -> list[str]:
    avail = ops.available_backends()
    names = ["reference", "compile"]
    if device.type == "cpu":
        names += ["cpp"] if avail["cpp"] else []
    else:
        names += [b for b in ("cuda", "triton") if avail[b]]
    return names


def provider_fn(bench: OpBench, provider: str):
    """The callable timed for ``provider``. For ``compile``, Dynamo's caches are reset first:
    every case calls the same reference function (one code object), and after
    ``torch._dynamo.config.recompile_limit`` guard sets Dynamo would silently run it eagerly, so
    later "compile" timings would be eager ones."""
    if provider == "compile":
        torch._dynamo.reset()
        return torch.compile(bench.call("reference"))
    return bench.call(provider)


def run(bench: OpBench, shapes, dtypes, *, device="cpu", channels_last=(False,), modes=None,
        providers=None, bandwidth: float | None = None) -> list[dict]:
    """Time every provider on every case; return result rows (ratios are per case, one run)."""
    device = torch.device(device)
    providers = providers or providers_for(device)
    rows = []
    for shape in shapes:
        for dtype in dtypes:
            for cl in channels_last:
                if cl and len(shape) != 4:
                    continue
                inputs = bench.inputs(shape, dtype, device, cl)
                for mode in modes or bench.modes:
                    times = {}
                    for p in providers:
                        if p == "compile" and mode == "double-bwd":
                            continue  # torch.compile cannot differentiate twice (DESIGN.md §3)
                        try:
                            times[p] = median_seconds(_workload(provider_fn(bench, p), inputs, mode), device)
                        except Exception as exc:  # a provider that cannot run this case
                            print(f"  {bench.name} {mode} {p}: skipped ({type(exc).__name__}: {exc})"[:200])
                    nbytes = bench.min_bytes(inputs, mode)
                    for p, t in times.items():
                        row = dict(op=bench.name, mode=mode, provider=p, shape=list(shape),
                                   dtype=str(dtype).removeprefix("torch."), channels_last=cl,
                                   seconds=t, gbps=nbytes / t / 1e9,
                                   speedup_vs_reference=times["reference"] / t if "reference" in times else None)
                        if bandwidth:
                            row["fraction_of_copy_bandwidth"] = nbytes / t / bandwidth
                        rows.append(row)
    return rows


def environment(device: str) -> dict:
    dev = torch.device(device)
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent).stdout.strip()
    except OSError:
        commit = None
    try:
        import triton
        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    return dict(
        device=torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or platform.machine(),
        device_type=dev.type, cpu_threads=torch.get_num_threads(), torch=torch.__version__,
        triton=triton_version, cuda=torch.version.cuda, git_commit=commit,
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )


def write_results(name: str, rows: list[dict], env: dict) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = env["date"].replace(":", "").replace("-", "")[:15]
    path = RESULTS_DIR / f"{name}-{env['device_type']}-{stamp}.json"
    path.write_text(json.dumps(dict(environment=env, rows=rows), indent=1))
    return path


def print_spread(rows: list[dict]) -> None:
    """Each case's speed-up over the reference: min / median / max over the rows' repeats."""
    import statistics
    by_case: dict[tuple, list[float]] = {}
    for r in rows:
        if r["provider"] != "reference" and r.get("speedup_vs_reference"):
            key = (r["op"], str(r["shape"]), r["dtype"], "y" if r["channels_last"] else "n", r["mode"], r["provider"])
            by_case.setdefault(key, []).append(r["speedup_vs_reference"])
    print(f"{'op':<22}{'shape':<20}{'dtype':<9}{'CL':<3}{'mode':<11}{'provider':<10}  speed-up min / median / max (runs)")
    for (op, shape, dtype, cl, mode, p), xs in by_case.items():
        print(f"{op:<22}{shape:<20}{dtype:<9}{cl:<3}{mode:<11}{p:<10}  "
              f"{min(xs):.2f} / {statistics.median(xs):.2f} / {max(xs):.2f} ({len(xs)})")


def print_table(rows: list[dict]) -> None:
    key = lambda r: (r["op"], str(r["shape"]), r["dtype"], r["channels_last"], r["mode"], r.get("repeat", 0))  # noqa: E731
    groups: dict[tuple, dict[str, dict]] = {}
    for r in rows:
        groups.setdefault(key(r), {})[r["provider"]] = r
    providers = sorted({r["provider"] for r in rows}, key=["reference", "compile", "cpp", "cuda", "triton"].index)
    head = f"{'op':<22}{'shape':<20}{'dtype':<9}{'CL':<3}{'mode':<11}" + "".join(f"{p + ' ms':>13}" for p in providers)
    head += "".join(f"{p + ' x':>11}" for p in providers if p != "reference")
    print(head)
    for (op, shape, dtype, cl, mode, _), by in groups.items():
        line = f"{op:<22}{shape:<20}{dtype:<9}{'y' if cl else 'n':<3}{mode:<11}"
        line += "".join(f"{by[p]['seconds'] * 1e3:>13.3f}" if p in by else f"{'-':>13}" for p in providers)
        line += "".join(f"{by[p]['speedup_vs_reference']:>11.2f}" if p in by and by[p]['speedup_vs_reference'] else f"{'-':>11}"
                        for p in providers if p != "reference")
        print(line)
