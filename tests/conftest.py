"""Suite-wide settings: compiled graphs are never served from Inductor's caches (an edited
autograd formula could otherwise hide behind a cached graph, DESIGN.md §3).

``PYGAN_REQUIRE_BACKENDS`` (comma-separated backend names, e.g. ``cpp,triton`` in CI, ``cuda,triton``
on a GPU machine) declares which compiled backends must be able to run: when one cannot, the
session stops with an error naming it and the registry's reason, instead of every test of that
backend turning into a skip and the run staying green."""

import os
from pathlib import Path

os.environ.setdefault("TORCHINDUCTOR_AUTOGRAD_CACHE", "0")
os.environ.setdefault("TORCHINDUCTOR_FX_GRAPH_CACHE", "0")
# No CUDA device visible (no /dev/nvidiaN node, or CUDA_VISIBLE_DEVICES hides them all): run the
# Triton backend's kernels in Triton's interpreter on CPU tensors. Triton reads this when pygan
# defines its kernels, so it is set here, before anything imports them.
_dev = os.listdir("/dev") if os.path.isdir("/dev") else []
if (not any(d.startswith("nvidia") and d[6:].isdigit() for d in _dev)
        or os.environ.get("CUDA_VISIBLE_DEVICES", "all").strip() in ("", "-1")):
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
import torch  # noqa: E402


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device; none is visible (torch.cuda.is_available() is False)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


def required_backends_problems(spec: str) -> list[str]:
    """Why each backend named in ``spec`` (comma-separated) cannot run here; empty when all can."""
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if not names:
        return []
    import pygan.ops as ops

    report = ops.available_backends()
    problems = []
    for name in names:
        if name not in report:
            problems.append(f"{name!r} is not a backend (one of {', '.join(report)})")
        elif not report[name]:
            problems.append(f"{name}: {report[name].reason}")
    return problems


def pytest_sessionstart(session):
    spec = os.environ.get("PYGAN_REQUIRE_BACKENDS", "")
    problems = required_backends_problems(spec)
    if problems:
        raise pytest.UsageError(f"PYGAN_REQUIRE_BACKENDS={spec} but a required backend cannot run: "
                                + "; ".join(problems))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


_OPS_DIR = Path(__file__).resolve().parent / "ops"


@pytest.fixture(autouse=True)
def _ops_threads(request):
    """The op tests run with at least two threads, so the C++ kernels' parallel paths
    (at::parallel_for splits) run, whatever an earlier test left behind."""
    if _OPS_DIR not in request.node.path.parents:
        yield
        return
    before = torch.get_num_threads()
    if before < 2:
        torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)
