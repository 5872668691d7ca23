"""Static GPU check without a GPU: compile pygan's Triton kernels for sm_90 and read the CUDA
cubins of the built extension, reporting registers, spills, stack and shared memory per kernel.

    python scripts/gpu_static_check.py                      # CI set, writes benchmarks/results/
    python scripts/gpu_static_check.py --set full --out /tmp/static.json

Triton: a stand-in active driver whose ``get_current_target()`` is ``GPUTarget("cuda", 90, 32)``
makes Triton's own compiler and the ptxas it ships build real sm_90 cubins on a machine with no
GPU; every kernel launch is turned into ``run(..., warmup=True)`` (compile, no run), with the
launcher code of each op unchanged. The launches come from two drivers:

* ``ops``: for every op in ``pygan.ops.OPS``, its declared self-test cases
  (``pygan.ops.selftest.cases_for``) on the shapes the GPU tests use, in each dtype and layout,
  forward, backward and double backward through the public op with ``backend="triton"``;
* ``progan``: ProGAN's training step (critic step with gradient penalty, generator step) at the
  paper's widths and batch, float32 NCHW and bfloat16 channels_last, with a shape-only stand-in
  for the convolutions (the kernels, not the numbers, are what is compiled).

Each distinct compiled kernel's cubin goes to ``cuobjdump -res-usage`` (registers, stack, shared,
local memory) and its ptxas log (``TRITON_DUMP_PTXAS_LOG``) gives the spill bytes. CUDA: the
fatbinary of ``pygan/_C*.so`` is read the same way for its sm_90 cubins.

Exit status 1 (and the violations listed) on: a kernel that fails to compile; an op with no
compiled kernel; a spill or local-memory stack in a Triton kernel that ProGAN's step launches; a
stack or local memory in any sm_90 CUDA kernel of the extension.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "gpu-static-sm90.json"

# The shapes of tests/ops/test_gpu.py: the parity cases, the packed-layout shapes, gradcheck's.
# (4, 37, 10, 12): the parity cases; (2, 24, 12, 24) and (2, 12, 10, 6): the packed-layout shapes
# (N even for minibatch std's groups, H and W even for the fade-in); (2, 5, 4, 4): gradcheck's.
TEST_SHAPES = {"ci": [(4, 37, 10, 12)],
               "full": [(4, 37, 10, 12), (2, 24, 12, 24), (2, 12, 10, 6), (2, 5, 4, 4)]}
TEST_DTYPES = {"ci": ("float32", "bfloat16"), "full": ("float32", "bfloat16", "float16", "float64")}
PROGAN_RESOLUTIONS = {"ci": 32, "full": 256}


def find_cuobjdump() -> str | None:
    """Triton's packaged cuobjdump, else the CUDA toolkit's, else one on PATH."""
    try:
        import triton
        bundled = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
        if bundled.is_file():
            return str(bundled)
    except ImportError:
        pass
    cuda_home = Path(os.environ.get("CUDA_HOME", "/usr/local/cuda")) / "bin" / "cuobjdump"
    return str(cuda_home) if cuda_home.is_file() else shutil.which("cuobjdump")


_FUNC = re.compile(r"^\s*Function (\S+):\s*$")
_RES = re.compile(r"(REG|STACK|SHARED|LOCAL):(\d+)")
_ARCH = re.compile(r"^arch = (sm_\d+a?)")


def parse_res_usage(text: str) -> list[dict]:
    """Rows {"arch", "function", "registers", "stack", "shared", "local"} from ``cuobjdump
    -res-usage`` output (a cubin's or every cubin of a fatbinary)."""
    rows, arch, name = [], None, None
    for line in text.splitlines():
        if m := _ARCH.match(line.strip()):
            arch = m.group(1)
        elif m := _FUNC.match(line):
            name = m.group(1)
        elif name and "REG:" in line:
            res = {k: int(v) for k, v in _RES.findall(line)}
            rows.append(dict(arch=arch, function=name, registers=res.get("REG", 0),
                             stack=res.get("STACK", 0), shared=res.get("SHARED", 0),
                             local=res.get("LOCAL", 0)))
            name = None
    return rows


_SPILL = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")


def parse_ptxas_spills(log: str) -> dict:
    """{"stack_frame", "spill_stores", "spill_loads"} from a ``ptxas -v`` log (zeros if absent)."""
    m = _SPILL.search(log)
    if not m:
        return dict(stack_frame=0, spill_stores=0, spill_loads=0, ptxas_log=False)
    return dict(stack_frame=int(m.group(1)), spill_stores=int(m.group(2)), spill_loads=int(m.group(3)),
                ptxas_log=True)


def demangle(names: list[str]) -> dict[str, str]:
    tool = shutil.which("c++filt")
    if not tool or not names:
        return {n: n for n in names}
    out = subprocess.run([tool], input="\n".join(names), capture_output=True, text=True).stdout.splitlines()
    return dict(zip(names, out)) if len(out) == len(names) else {n: n for n in names}


# --------------------------------------------------------------------------------------- Triton

class Recorder:
    """Compile-only launches: every ``kernel[grid](...)`` compiles for the stand-in target; the
    compiled kernels are kept with the contexts (driver, op, dtype, layout) that launched them."""

    def __init__(self):
        self.kernels: dict[tuple, dict] = {}
        self.errors: list[dict] = []
        self.context: dict = {}

    def install(self) -> None:
        import torch
        from triton.backends.compiler import GPUTarget
        from triton.backends.nvidia.driver import CudaDriver
        from triton.runtime import driver
        from triton.runtime.jit import JITFunction

        class StandInDriver(CudaDriver):
            """The CUDA driver's compile side, with no device: target sm_90, device 0, stream 0."""

            def __init__(self):   # no libcuda to load
                pass

            @classmethod
            def is_active(cls):
                return True

            def get_current_target(self):
                return GPUTarget("cuda", 90, 32)

            def get_current_device(self):
                return 0

            def get_current_stream(self, device=None):
                return 0

            def get_active_torch_device(self):
                return torch.device("cpu")

        driver.set_active(StandInDriver())
        recorder = self

        def getitem(fn, grid):
            def launch(*args, **kwargs):
                log = io.StringIO()
                with contextlib.redirect_stdout(log):
                    kernel = fn.run(*args, grid=grid, warmup=True, **kwargs)
                recorder.add(fn, kernel, log.getvalue())
                return kernel
            return launch

        JITFunction.__getitem__ = getitem

    def add(self, fn, kernel, log: str) -> None:
        key = (fn.fn.__module__, fn.fn.__name__, id(kernel))
        entry = self.kernels.get(key)
        if entry is None:
            md = kernel.metadata
            entry = self.kernels[key] = dict(
                kernel=fn.fn.__name__, module=fn.fn.__module__.rsplit(".", 1)[-1], cubin=kernel.asm["cubin"],
                num_warps=md.num_warps, shared_dynamic=md.shared,
                constexprs={k: _short(v) for k, v in _constexprs(fn, kernel).items()},
                **parse_ptxas_spills(log), contexts=set())
        entry["contexts"].add(tuple(sorted(self.context.items())))

    @contextlib.contextmanager
    def within(self, **context):
        previous, self.context = self.context, context
        try:
            yield
        except Exception as exc:  # noqa: BLE001 - a compile failure is a result, reported below
            root = exc
            while root.__cause__ is not None:   # Triton's CompilationError points at the call site
                root = root.__cause__
            cause = "" if root is exc else f"\n(root cause: {type(root).__name__}: {root})"[:1000]
            self.errors.append(dict(**context, error=f"{type(exc).__name__}: {exc}"[:2000] + cause))
        finally:
            self.context = previous


def _constexprs(fn, kernel) -> dict:
    try:
        consts = kernel.src.constants
        names = [p.name for p in fn.params]
        return {names[k[0]] if isinstance(k, tuple) else str(k): v for k, v in consts.items()
                if (isinstance(k, tuple) and len(k) == 1 and names[k[0]].isupper())}
    except Exception:  # noqa: BLE001 - only a label
        return {}


def _short(v) -> str | int | bool:
    return v if isinstance(v, (int, bool)) else str(v).replace("triton.language.", "")


def drive_ops(rec: Recorder, shapes, dtypes) -> None:
    """Every op's declared cases, forward + backward + double backward, backend="triton"."""
    import torch

    import pygan.ops as ops
    from pygan.ops import selftest

    for op in ops.OPS:
        for shape in shapes:
            try:
                cases = selftest.cases_for(op, shape)
            except LookupError as exc:
                rec.errors.append(dict(driver="ops", op=op, error=str(exc)))
                break
            for case in cases:
                for dtype in (getattr(torch, d) for d in dtypes):
                    for layout, fmt in (("nchw", torch.contiguous_format), ("nhwc", torch.channels_last)):
                        inputs = [t.to(dtype) for t in case.inputs]
                        inputs = [t.contiguous(memory_format=fmt) if t.dim() == 4 else t for t in inputs]
                        with rec.within(driver="ops", op=op, dtype=str(dtype).split(".")[1], layout=layout):
                            selftest._evaluate(lambda *a, c=case: c.call("triton", *a), inputs, 0, case.second_order)


@contextlib.contextmanager
def _shape_only_convolutions(memory_format):
    """F.conv2d replaced by zeros of the right shape and memory format, whose backward gives zeros
    in the layouts of x and the weight (as cuDNN's would) and stays differentiable (so the
    gradient penalty's second order reaches every op): the step's pygan ops see their real shapes
    and layouts at no convolution cost. Outputs are in ``memory_format``: a network converted to
    channels_last has channels_last weights, and cuDNN then writes channels_last outputs even
    for an NCHW input (the generator's first conv)."""
    import torch
    import torch.nn.functional as F

    class ShapeOnlyConv(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, weight, stride, padding):
            ctx.save_for_backward(x, weight)
            (sh, sw), (ph, pw) = stride, padding
            kh, kw = weight.shape[-2:]
            shape = (x.shape[0], weight.shape[0], (x.shape[2] + 2 * ph - kh) // sh + 1,
                     (x.shape[3] + 2 * pw - kw) // sw + 1)
            return torch.zeros(shape, dtype=x.dtype, device=x.device).contiguous(memory_format=memory_format)

        @staticmethod
        def backward(ctx, grad):
            x, weight = ctx.saved_tensors
            tie = grad.flatten()[:1].sum() * 0      # keeps the second-order graph connected
            gx = torch.zeros_like(x, memory_format=torch.preserve_format) + tie.to(x.dtype)
            gw = torch.zeros_like(weight) + tie.to(weight.dtype)
            return gx, gw, None, None

    real = F.conv2d

    def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        def pair(v):
            return (v, v) if isinstance(v, int) else tuple(v)
        kind = x.device.type
        dtype = torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else x.dtype
        out = ShapeOnlyConv.apply(x.to(dtype), weight.to(dtype), pair(stride), pair(padding))
        return out if bias is None else out + bias.to(out.dtype).view(1, -1, 1, 1)

    F.conv2d = conv2d
    try:
        yield
    finally:
        F.conv2d = real


def drive_progan(rec: Recorder, max_resolution: int) -> None:
    """ProGAN's critic (WGAN-GP + drift) and generator steps, per resolution 4..max_resolution."""
    import math

    import torch

    import pygan.ops as ops
    from pygan import losses
    from pygan.models import progan

    batch = {4: 16, 8: 16, 16: 16, 32: 16, 64: 16, 128: 16, 256: 14}
    G = progan.Generator(max_resolution, 512, 3, 8192, 512)
    D = progan.Discriminator(max_resolution, 512, 3, 8192, 512)
    for dtype, fmt, layout in ((torch.float32, torch.contiguous_format, "nchw"),
                               (torch.bfloat16, torch.channels_last, "nhwc")):
        g, d = G.to(memory_format=fmt), D.to(memory_format=fmt)
        for steps in range(int(math.log2(max_resolution)) - 1):
            res = 4 * 2 ** steps
            n = batch[res]
            with rec.within(driver="progan", op=f"step {res}x{res}", dtype=str(dtype).split(".")[1],
                            layout=layout), _shape_only_convolutions(fmt), ops.use_backend("triton"), \
                    torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
                real = torch.zeros(n, 3, res, res).contiguous(memory_format=fmt)
                z = torch.zeros(n, 512)
                fake = g(z, 0.5, steps).detach().contiguous(memory_format=fmt)
                penalty = losses.gradient_penalty(d, real, fake, 0.5, steps)
                d_loss = d(real, 0.5, steps).mean() - d(fake, 0.5, steps).mean() + 10 * penalty
                torch.autograd.grad(d_loss, list(d.parameters()), allow_unused=True)
                g_loss = -d(g(z, 0.5, steps), 0.5, steps).mean()
                torch.autograd.grad(g_loss, list(g.parameters()), allow_unused=True)


def triton_rows(rec: Recorder, cuobjdump: str | None, workdir: Path) -> list[dict]:
    rows = []
    for i, entry in enumerate(rec.kernels.values()):
        usage = {}
        if cuobjdump:
            path = workdir / f"k{i}.cubin"
            path.write_bytes(entry["cubin"])
            out = subprocess.run([cuobjdump, "-res-usage", str(path)], capture_output=True, text=True)
            parsed = parse_res_usage(out.stdout)
            usage = parsed[0] if parsed else {}
        contexts = [dict(c) for c in entry["contexts"]]
        rows.append(dict(
            kernel=entry["kernel"], module=entry["module"], num_warps=entry["num_warps"],
            constexprs=entry["constexprs"], registers=usage.get("registers"),
            spill_stores=entry["spill_stores"], spill_loads=entry["spill_loads"],
            stack=usage.get("stack", entry["stack_frame"]), local=usage.get("local"),
            shared=(usage.get("shared") or 0) + (entry["shared_dynamic"] or 0),
            progan=any(c.get("driver") == "progan" for c in contexts),
            dtypes=sorted({c.get("dtype") for c in contexts if c.get("dtype")}),
            layouts=sorted({c.get("layout") for c in contexts if c.get("layout")}),
            launched_by=sorted({f"{c.get('driver')}:{c.get('op')}" for c in contexts})[:6]))
    rows.sort(key=lambda r: (r["module"], r["kernel"], -(r["registers"] or 0)))
    return rows


def cuda_rows(cuobjdump: str | None) -> tuple[list[dict], str | None]:
    """sm_90 kernels of the built extension, or ([], why not)."""
    ext = sorted((ROOT / "pygan").glob("_C*.so"))
    if not ext:
        return [], "pygan/_C*.so is not built"
    if not cuobjdump:
        return [], "no cuobjdump found (Triton's package or $CUDA_HOME/bin)"
    out = subprocess.run([cuobjdump, "-res-usage", str(ext[0])], capture_output=True, text=True)
    rows = [r for r in parse_res_usage(out.stdout) if r["arch"] in ("sm_90", "sm_90a")]
    if not rows:
        return [], f"{ext[0].name} holds no sm_90 cubin (built without FORCE_CUDA=1?)"
    names = demangle([r["function"] for r in rows])
    for r in rows:
        r["function"] = _short_cuda_name(names[r["function"]])
    return rows, None


def _short_cuda_name(name: str) -> str:
    name = re.sub(r"pygan::\(anonymous namespace\)::", "", name)
    name = name.replace("c10::BFloat16", "bf16").replace("c10::Half", "f16")
    return re.sub(r"\(.*\)$", "", name) if len(name) > 80 else name


def violations(report: dict) -> list[str]:
    """What fails the check (see the module docstring)."""
    bad = [f"compile error in {e.get('driver')}:{e.get('op')} {e.get('dtype', '')} {e.get('layout', '')}: "
           f"{e['error'].splitlines()[0] if e['error'] else ''}" for e in report["errors"]]
    import pygan.ops as ops
    compiled = {r["module"] for r in report["triton"]}
    bad += [f"no Triton kernel of op {op} was compiled" for op in ops.OPS if op not in compiled]
    for r in report["triton"]:
        if r["progan"] and (r["spill_stores"] or r["spill_loads"] or r["stack"] or r["local"]):
            bad.append(f"Triton {r['kernel']} {r['constexprs']} in ProGAN's step: {r['spill_stores']} B spill "
                       f"stores, {r['spill_loads']} B spill loads, {r['stack']} B stack")
    for r in report["cuda"]:
        if r["stack"] or r["local"]:
            bad.append(f"CUDA {r['function']}: {r['stack']} B stack, {r['local']} B local")
    return bad


def markdown(report: dict) -> str:
    lines = [f"# Static sm_90 resource usage ({report['date']}, commit {report['commit']})", "",
             f"Triton {report['triton_version']} compiled {len(report['triton'])} kernel variants "
             f"({report['set']} set) in {report['seconds']['triton']:.0f} s; torch {report['torch_version']}.", "",
             "| Triton kernel | module | warps | constexprs | regs | spill st/ld (B) | stack (B) | shared (B) | ProGAN | dtypes |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["triton"]:
        consts = ", ".join(f"{k}={v}" for k, v in r["constexprs"].items())
        lines.append(f"| {r['kernel']} | {r['module']} | {r['num_warps']} | {consts} | {r['registers']} | "
                     f"{r['spill_stores']}/{r['spill_loads']} | {r['stack']} | {r['shared']} | "
                     f"{'yes' if r['progan'] else ''} | {' '.join(r['dtypes'])} |")
    lines += ["", "| CUDA kernel (sm_90) | regs | stack (B) | local (B) | shared (B) |", "|---|---|---|---|---|"]
    lines += [f"| `{r['function']}` | {r['registers']} | {r['stack']} | {r['local']} | {r['shared']} |"
              for r in report["cuda"]]
    if report["cuda_skipped"]:
        lines.append(f"\nCUDA cubins not read: {report['cuda_skipped']}")
    lines += ["", "Violations:" if report["violations"] else "No violations."]
    lines += [f"- {v}" for v in report["violations"]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--set", choices=["ci", "full"], default="ci",
                   help="ci: the GPU tests' main shape in float32 and bfloat16, ProGAN up to 32x32; "
                        "full: every GPU test shape and dtype, ProGAN up to 256x256")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON report (a .md table beside it)")
    p.add_argument("--skip-cuda", action="store_true", help="do not read the extension's cubins")
    p.add_argument("--only-ops", action="store_true", help="no ProGAN step driver")
    p.add_argument("--jobs", type=int, default=1, help="2: run the two drivers in two processes")
    p.add_argument("--part", choices=["ops", "progan"], help=argparse.SUPPRESS)   # a --jobs child
    args = p.parse_args(argv)
    if args.jobs > 1 and not args.part and not args.only_ops:
        return _parallel(args)

    os.environ.pop("TRITON_INTERPRET", None)          # compile: the kernels must be JITFunctions
    os.environ["TRITON_DUMP_PTXAS_LOG"] = "1"         # spill bytes come from ptxas -v
    os.environ.setdefault("PYGAN_QUIET_IMPORT", "1")
    workdir = Path(tempfile.mkdtemp(prefix="pygan-static-"))
    os.environ["TRITON_CACHE_DIR"] = str(workdir / "cache")   # compile afresh: every log is seen
    rec = Recorder()
    rec.install()
    import torch
    import triton

    from pygan.ops import _library
    if _library._triton_error:
        print(f"the Triton kernels did not load: {_library._triton_error}", file=sys.stderr)
        return 1
    os.environ["TRITON_INTERPRET"] = "1"   # lets the registry hand CPU tensors to backend="triton";
    #                                        the kernels were defined compiled, launches only compile
    torch.manual_seed(0)
    t0 = time.perf_counter()
    if args.part in (None, "ops"):
        drive_ops(rec, TEST_SHAPES[args.set], TEST_DTYPES[args.set])
    t1 = time.perf_counter()
    if args.part in (None, "progan") and not args.only_ops:
        drive_progan(rec, PROGAN_RESOLUTIONS[args.set])
    t2 = time.perf_counter()
    cuobjdump = find_cuobjdump()
    triton_table = triton_rows(rec, cuobjdump, workdir)
    if args.part:
        args.out.write_text(json.dumps(dict(triton=triton_table, errors=rec.errors,
                                            seconds={args.part: round(time.perf_counter() - t0, 1)}), default=str))
        shutil.rmtree(workdir, ignore_errors=True)
        return 0
    cuda_table, cuda_skipped = ([], "--skip-cuda") if args.skip_cuda else cuda_rows(cuobjdump)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip() or "unknown"
    report = dict(date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                  commit=commit, set=args.set, target="cuda sm_90 (warp 32)", triton_version=triton.__version__,
                  torch_version=torch.__version__, cuobjdump=cuobjdump,
                  seconds=dict(ops=round(t1 - t0, 1), progan=round(t2 - t1, 1),
                               triton=round(time.perf_counter() - t0, 1)),
                  errors=rec.errors, triton=triton_table, cuda=cuda_table, cuda_skipped=cuda_skipped)
    report["violations"] = violations(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    args.out.with_suffix(".md").write_text(markdown(report))
    shutil.rmtree(workdir, ignore_errors=True)
    print(f"{len(triton_table)} Triton variants ({report['seconds']}), {len(cuda_table)} CUDA sm_90 "
          f"kernels; {len(report['violations'])} violations; wrote {args.out}")
    for v in report["violations"]:
        print("VIOLATION:", v)
    return 1 if report["violations"] else 0


def _parallel(args) -> int:
    """The ops and ProGAN drivers in two processes (each compiles its own kernels), merged."""
    t0 = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="pygan-static-parts-"))
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    procs = {part: subprocess.Popen([sys.executable, __file__, "--set", args.set, "--part", part,
                                     "--out", str(workdir / f"{part}.json")], env=env)
             for part in ("ops", "progan")}
    parts = {}
    for part, proc in procs.items():
        rc = proc.wait()
        try:
            parts[part] = json.loads((workdir / f"{part}.json").read_text())
        except (FileNotFoundError, ValueError):
            parts[part] = dict(triton=[], errors=[dict(driver=part, op="-", error=f"the {part} process "
                                                      f"failed (exit {rc}) before writing its results")], seconds={})
    merged: dict[str, dict] = {}
    for row in parts["ops"]["triton"] + parts["progan"]["triton"]:
        key = json.dumps([row[k] for k in ("module", "kernel", "num_warps", "constexprs", "registers",
                                           "spill_stores", "stack", "shared")], default=str)
        if key in merged:
            old = merged[key]
            old["progan"] = old["progan"] or row["progan"]
            old["dtypes"] = sorted(set(old["dtypes"]) | set(row["dtypes"]))
            old["layouts"] = sorted(set(old["layouts"]) | set(row["layouts"]))
            old["launched_by"] = sorted(set(old["launched_by"]) | set(row["launched_by"]))[:6]
        else:
            merged[key] = row
    import torch
    import triton
    cuobjdump = find_cuobjdump()
    cuda_table, cuda_skipped = ([], "--skip-cuda") if args.skip_cuda else cuda_rows(cuobjdump)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip() or "unknown"
    rows = sorted(merged.values(), key=lambda r: (r["module"], r["kernel"], -(r["registers"] or 0)))
    report = dict(date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                  commit=commit, set=args.set, target="cuda sm_90 (warp 32)", triton_version=triton.__version__,
                  torch_version=torch.__version__, cuobjdump=cuobjdump,
                  seconds=dict(**parts["ops"]["seconds"], **parts["progan"]["seconds"],
                               triton=round(time.perf_counter() - t0, 1)),
                  errors=parts["ops"]["errors"] + parts["progan"]["errors"], triton=rows, cuda=cuda_table,
                  cuda_skipped=cuda_skipped)
    report["violations"] = violations(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    args.out.with_suffix(".md").write_text(markdown(report))
    shutil.rmtree(workdir, ignore_errors=True)
    print(f"{len(rows)} Triton variants ({report['seconds']}), {len(cuda_table)} CUDA sm_90 kernels; "
          f"{len(report['violations'])} violations; wrote {args.out}")
    for v in report["violations"]:
        print("VIOLATION:", v)
    return 1 if report["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
