"""Suite-wide settings: compiled graphs are never served from Inductor's caches (an edited
autograd formula could otherwise hide behind a cached graph, DESIGN.md §3)."""

import os

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


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
