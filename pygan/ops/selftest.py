"""Self-test of the compiled backends: every op of every compiled backend that runs on a device,
against the plain PyTorch reference, on small random inputs.

    python -m pygan.ops.selftest [--device cuda] [--no-cache] [--json]

For each op case and backend (``cpp`` on CPU tensors; ``cuda`` and ``triton`` on CUDA tensors;
``triton`` on CPU tensors too under ``TRITON_INTERPRET=1``), in float32, contiguous and
channels_last, three quantities are compared with the reference evaluated in float64 on the same
(float32-rounded) inputs:

    forward            y = f(x)
    backward           g = (dy/dx)^T v                     for a random cotangent v
    double backward    h = d<g, u>/dx                       for a random u (ops whose design
                                                            includes second order)

The error of each is ``max |a - r64| / max(1, max |r64|)`` over all its elements (outputs and
each input's gradient; the double backward also differentiates in the cotangent v, which runs
each ``_bwd`` op's own autograd), and a case passes when every error is at most
max(``TOLERANCE``, 8 x the float32 reference's own error): TOLERANCE = 1e-4 is 800 times
float32's unit roundoff, while a wrong kernel is off by O(1). Any exception is a FAIL with its
reason.

Results are cached per (device name, build id) in ``$PYGAN_CACHE_DIR`` (default
``$XDG_CACHE_HOME/pygan``, else ``~/.cache/pygan``), as ``selftest-<key>.json``; the build id
hashes the compiled extension's size and mtime, the Triton kernel and op sources, and the torch
and triton versions, so a rebuild or an edited kernel runs the test again.

:func:`guard` is what the training CLI calls on a CUDA device: it runs (or reads) the self-test
and, for every (op, backend) that failed, calls
``pygan.ops._registry.disable_backend_for_op`` so that ``auto`` runs the next candidate for that
op (the other GPU backend, else the reference), with one warning when that op first runs.

New ops: the cases come from a ``selftest_cases(shape)`` function in the op's module
(``pygan.ops.<op>``) or its Triton module (``pygan.triton_kernels.<op>``), returning a list of
:class:`Case`; the six original ops have theirs here (:func:`builtin_cases`). The same cases
drive the static sm_90 compile check (``scripts/gpu_static_check.py``).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

#: Largest accepted error relative to max(1, max |reference|), in float32.
TOLERANCE = 1e-4
#: (N, C, H, W) of the self-test's inputs: even sizes (fade-in halves H and W, minibatch std
#: groups samples in pairs), C odd so no vector path hides a scalar tail.
DEFAULT_SHAPE = (4, 5, 6, 8)


@dataclasses.dataclass(frozen=True)
class Case:
    """One way of calling an op.

    ``call(backend, *tensors)`` runs the op with ``backend=backend``; ``reference(*tensors)`` is
    the plain PyTorch oracle; ``inputs`` are float64 CPU tensors (the self-test rounds them to
    its dtype and moves them to the device); ``second_order`` says whether the op's design
    includes a double backward."""

    name: str
    call: Callable[..., torch.Tensor]
    reference: Callable[..., torch.Tensor]
    inputs: tuple[torch.Tensor, ...]
    second_order: bool = True


def builtin_cases(op: str, shape: Sequence[int] = DEFAULT_SHAPE) -> list[Case] | None:
    """The cases of the six original ops on an (N, C, H, W) shape (H and W even), else None."""
    import pygan.ops as ops

    n, c, h, w = shape
    x = torch.randn(n, c, h, w, dtype=torch.float64)
    away = x + 0.2 * x.sign()            # away from the leaky-ReLU kink, where the derivative jumps
    bias = torch.randn(c, dtype=torch.float64)
    low = torch.randn(n, c, h // 2, w // 2, dtype=torch.float64)
    kw = dict(scale=0.3, gain=math.sqrt(2))
    table = {
        "pixel_norm": [Case("pixel_norm", lambda b, t: ops.pixel_norm(t, backend=b),
                            ops.pixel_norm_reference, (x,))],
        "bias_lrelu": [Case("bias_lrelu", lambda b, t, bb: ops.bias_lrelu(t, bb, backend=b, **kw),
                            lambda t, bb: ops.bias_lrelu_reference(t, bb, **kw), (away, bias))],
        "bias_lrelu_pixel_norm": [Case(
            "bias_lrelu_pixel_norm", lambda b, t, bb: ops.bias_lrelu_pixel_norm(t, bb, backend=b, **kw),
            lambda t, bb: ops.bias_lrelu_pixel_norm_reference(t, bb, **kw), (away, bias))],
        "minibatch_std": [Case("minibatch_std", lambda b, t: ops.minibatch_std(t, 2, 1, backend=b),
                               lambda t: ops.minibatch_std_reference(t, 2, 1), (x,))],
        "fade_in": [
            Case("fade_in", lambda b, hi, lo: ops.fade_in(lo, hi, 0.3, backend=b),
                 lambda hi, lo: ops.fade_in_reference(lo, hi, 0.3), (x, low)),
            Case("fade_in_same", lambda b, hi, lo: ops.fade_in(lo, hi, 0.6, backend=b),
                 lambda hi, lo: ops.fade_in_reference(lo, hi, 0.6), (x, x.flip(0))),
        ],
        "gradient_penalty": [Case("gradient_penalty", lambda b, t: ops.gradient_penalty(t, backend=b),
                                  ops.gradient_penalty_reference, (x,), second_order=False)],
    }
    return table.get(op)


def cases_for(op: str, shape: Sequence[int] = DEFAULT_SHAPE) -> list[Case]:
    """The declared cases of ``op``: its module's or its Triton module's ``selftest_cases(shape)``,
    else :func:`builtin_cases`. Raises LookupError when an op declares none."""
    for module_name in (f"pygan.ops.{op}", f"pygan.triton_kernels.{op}"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        declared = getattr(module, "selftest_cases", None)
        if declared is not None:
            return list(declared(tuple(shape)))
    cases = builtin_cases(op, shape)
    if cases is None:
        raise LookupError(f"op {op!r} declares no self-test cases: define selftest_cases(shape) -> "
                          f"list[pygan.ops.selftest.Case] in pygan/ops/{op}.py or "
                          f"triton_kernels/{op}.py")
    return cases


def all_cases(shape: Sequence[int] = DEFAULT_SHAPE) -> dict[str, list[Case]]:
    """op -> its cases, for every op in ``pygan.ops.OPS``."""
    import pygan.ops as ops
    return {op: cases_for(op, shape) for op in ops.OPS}


def compiled_backends(device: torch.device) -> list[str]:
    """The compiled backends that can run on ``device`` in this process."""
    import pygan.ops as ops
    avail = ops.available_backends()
    if device.type == "cuda":
        wanted = ("cuda", "triton")
    elif device.type == "cpu":
        wanted = ("cpp", "triton") if os.environ.get("TRITON_INTERPRET") == "1" else ("cpp",)
    else:
        wanted = ()
    return [b for b in wanted if avail[b]]


def _evaluate(fn: Callable, leaves_in: Sequence[torch.Tensor], cot_seed: int, second_order: bool):
    """(forward, first-order grads, second-order grads) of ``fn`` at ``leaves_in``, all detached."""
    leaves = [t.detach().requires_grad_() for t in leaves_in]
    out = fn(*leaves)
    gen = torch.Generator().manual_seed(cot_seed)
    v = torch.randn(out.shape, generator=gen, dtype=torch.float64).to(out.device, out.dtype)
    v.requires_grad_(second_order)
    grads = torch.autograd.grad(out, leaves, v, create_graph=second_order)
    second = ()
    if second_order:
        # differentiate <g, u> in the inputs and in the cotangent v, as a gradient penalty does:
        # the latter runs the _bwd op's own autograd (the only path for a map linear in x)
        us = [torch.randn(g.shape, generator=gen, dtype=torch.float64).to(g.device, g.dtype) for g in grads]
        inner = sum((g * u).sum() for g, u in zip(grads, us))
        wrt = [*leaves, v]
        second = torch.autograd.grad(inner, wrt, allow_unused=True)
        second = tuple(torch.zeros_like(t) if s is None else s for s, t in zip(second, wrt))
    return out.detach(), tuple(g.detach() for g in grads), tuple(s.detach() for s in second)


def _error(a: torch.Tensor, r: torch.Tensor) -> float:
    a, r = a.double().cpu(), r.double().cpu()
    if a.shape != r.shape:
        raise AssertionError(f"shape {tuple(a.shape)} != reference {tuple(r.shape)}")
    if not torch.isfinite(a).all() and torch.isfinite(r).all():
        return math.inf
    scale = max(1.0, float(r.abs().max())) if r.numel() else 1.0
    return float((a - r).abs().max()) / scale if r.numel() else 0.0


def check_case(case: Case, backend: str, device: torch.device, dtype: torch.dtype = torch.float32,
               memory_format: torch.memory_format = torch.contiguous_format) -> dict:
    """One case on one backend: {"max_error": float, "ok": bool, "reason": str | None}."""
    def place(t):
        t = t.to(dtype).to(device)
        return t.contiguous(memory_format=memory_format) if t.dim() == 4 else t

    inputs = [place(t) for t in case.inputs]
    try:
        got = _evaluate(lambda *a: case.call(backend, *a), inputs, 1, case.second_order)
        want = _evaluate(case.reference, [t.double() for t in inputs], 1, case.second_order)
        own = _evaluate(case.reference, inputs, 1, case.second_order)
        errors, limits = {}, {}
        for i, part in enumerate(("forward", "backward", "double backward")):
            parts = lambda res: [res[0]] if i == 0 else list(res[i])   # noqa: E731
            for a, r, o in zip(parts(got), parts(want), parts(own)):
                errors[part] = max(errors.get(part, 0.0), _error(a, r))
                # the reference's own error in this dtype, 8 times over, where it exceeds TOLERANCE
                limits[part] = max(limits.get(part, TOLERANCE), 8 * _error(o, r))
    except Exception as exc:  # noqa: BLE001 - a crashing kernel is a FAIL with its reason
        return dict(ok=False, max_error=None, reason=f"{type(exc).__name__}: {exc}"[:300])
    worst = max(errors.values())
    bad = [k for k in errors if not errors[k] <= limits[k]]
    if not bad:
        return dict(ok=True, max_error=worst, reason=None)
    text = ", ".join(f"{k} {errors[k]:.2g} > {limits[k]:.2g}" for k in bad)
    return dict(ok=False, max_error=worst, reason=f"error {text}")


def build_id() -> str:
    """A hash of what decides the self-test's outcome: the compiled extension (size, mtime), the
    op and Triton kernel sources, torch and triton versions."""
    from pygan.ops import _library
    h = hashlib.sha256()
    h.update(torch.__version__.encode())
    try:
        import triton
        h.update(triton.__version__.encode())
    except ImportError:
        pass
    ext = _library.extension_path()
    if ext is not None:
        st = ext.stat()
        h.update(f"{ext.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    root = Path(__file__).resolve().parent.parent
    for folder in (root / "ops", root / "triton_kernels"):
        for path in sorted(folder.glob("*.py")) if folder.is_dir() else ():
            h.update(path.name.encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def cache_dir() -> Path:
    """``$PYGAN_CACHE_DIR``, else ``$XDG_CACHE_HOME/pygan``, else ``~/.cache/pygan``."""
    if os.environ.get("PYGAN_CACHE_DIR"):
        return Path(os.environ["PYGAN_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pygan"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type}"


def cache_path(device: torch.device) -> Path:
    key = hashlib.sha256(f"{device_name(device)}|{build_id()}".encode()).hexdigest()[:16]
    return cache_dir() / f"selftest-{key}.json"


def selftest(device: str | torch.device | None = None, *, backends: Sequence[str] | None = None,
             ops: Sequence[str] | None = None, use_cache: bool = True, verbose: bool = False) -> dict:
    """Run (or read from the cache) the self-test on ``device`` (default: CUDA if available).

    Returns ``{"device", "build_id", "seconds", "cached", "results": [row, ...]}`` where each row
    is ``{"op", "case", "backend", "layout", "ok", "max_error", "reason"}``. ``backends`` and
    ``ops`` narrow the run (a narrowed run is not cached)."""
    device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    narrowed = backends is not None or ops is not None
    path = cache_path(device)
    if use_cache and not narrowed and path.is_file():
        try:
            report = json.loads(path.read_text())
            report["cached"] = True
            return report
        except (OSError, ValueError):
            pass
    import pygan.ops as pops
    chosen = list(backends) if backends is not None else compiled_backends(device)
    start = time.perf_counter()
    rows = []
    state = torch.random.get_rng_state()
    try:
        for op in (ops or pops.OPS):
            torch.manual_seed(0)
            try:
                cases = cases_for(op)
            except LookupError as exc:
                rows += [dict(op=op, case=op, backend=b, layout="-", ok=False, max_error=None,
                              reason=str(exc)) for b in chosen]
                continue
            for case in cases:
                for backend in chosen:
                    for layout, fmt in (("nchw", torch.contiguous_format), ("nhwc", torch.channels_last)):
                        r = check_case(case, backend, device, memory_format=fmt)
                        rows.append(dict(op=op, case=case.name, backend=backend, layout=layout, **r))
                        if verbose:
                            print(rows[-1], file=sys.stderr)
    finally:
        torch.random.set_rng_state(state)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    report = dict(device=device_name(device), build_id=build_id(), backends=chosen,
                  seconds=round(time.perf_counter() - start, 3), cached=False, results=rows)
    if use_cache and not narrowed:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps(report, indent=1))
            tmp.replace(path)
        except OSError:
            pass   # a read-only home only costs a rerun next time
    return report


def failures(report: dict) -> dict[tuple[str, str], str]:
    """(op, backend) -> the first failure's reason, for every pair with a failing case."""
    bad: dict[tuple[str, str], str] = {}
    for r in report["results"]:
        if not r["ok"]:
            bad.setdefault((r["op"], r["backend"]), f"{r['case']} {r['layout']}: {r['reason']}")
    return bad


def format_table(report: dict) -> str:
    """op (case) x backend: ``ok <max error>`` or ``FAIL <reason>`` (worst over layouts)."""
    backends = report.get("backends") or sorted({r["backend"] for r in report["results"]})
    cells: dict[tuple[str, str], list[dict]] = {}
    for r in report["results"]:
        cells.setdefault((r["case"], r["backend"]), []).append(r)
    cases = list(dict.fromkeys(r["case"] for r in report["results"]))

    def cell(rows):
        bad = [r for r in rows if not r["ok"]]
        if bad:
            return f"FAIL {bad[0]['layout']}: {bad[0]['reason']}"
        return f"ok {max(r['max_error'] for r in rows):.1e}"

    body = [[c] + [cell(cells[(c, b)]) if (c, b) in cells else "-" for b in backends] for c in cases]
    head = ["op"] + list(backends)
    widths = [max(len(row[i]) for row in [head] + body) for i in range(len(head))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in [head] + body]
    lines.insert(1, "  ".join("-" * w for w in widths))
    when = "cached" if report.get("cached") else f"{report['seconds']:.2f} s"
    title = (f"pygan ops self-test on {report['device']} (build {report['build_id']}, {when}; "
             f"tolerance {TOLERANCE:g})")
    return "\n".join([title, *lines])


def guard(device: torch.device, *, use_cache: bool = True) -> dict[tuple[str, str], str]:
    """Run the self-test on a CUDA ``device`` (once per device and build, cached) and make ``auto``
    skip every (op, backend) that failed. Returns those pairs with their reasons; does nothing
    (returns {}) off CUDA."""
    device = torch.device(device)
    if device.type != "cuda":
        return {}
    return apply(selftest(device, use_cache=use_cache))


def apply(report: dict) -> dict[tuple[str, str], str]:
    """Make ``auto`` skip every (op, backend) that failed in ``report``; returns those pairs."""
    from pygan.ops import _registry
    bad = failures(report)
    for (op, backend), reason in bad.items():
        _registry.disable_backend_for_op(op, backend, f"its kernel disagrees with the reference in "
                                                      f"the self-test on {report['device']}: {reason}")
    return bad


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pygan.ops.selftest", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available)")
    p.add_argument("--backend", action="append", help="only these backends (repeatable)")
    p.add_argument("--op", action="append", help="only these ops (repeatable)")
    p.add_argument("--no-cache", action="store_true", help="run even if a cached result exists")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    args = p.parse_args(argv)
    report = selftest(args.device, backends=args.backend, ops=args.op, use_cache=not args.no_cache)
    print(json.dumps(report, indent=1) if args.json else format_table(report))
    if not report["backends"]:
        print("no compiled backend runs on this device", file=sys.stderr)
    return 1 if failures(report) else 0


if __name__ == "__main__":
    sys.exit(main())


class _CallableModule(type(sys)):
    """``pygan.ops.selftest`` is this module and is also callable as :func:`selftest`, so both
    ``pygan.ops.selftest(device)`` and ``python -m pygan.ops.selftest`` work."""

    def __call__(self, *args, **kwargs):
        return selftest(*args, **kwargs)


if __name__ != "__main__":
    sys.modules[__name__].__class__ = _CallableModule
