"""Loading the compiled parts of pygan and wiring them into the backend registry.

``pygan._C`` (built by setup.py from csrc/) defines every op's schema in ``torch.ops.pygan`` with
CPU kernels, and CUDA kernels when it was built with a CUDA toolkit. Python then registers each
op's fake (meta) kernel and autograd formula. Nothing is compiled at import time.
"""

from __future__ import annotations

import importlib.machinery
import os
import warnings
from pathlib import Path

import torch

from . import _registry

_PACKAGE_DIR = Path(__file__).resolve().parent.parent
_extension_error: str | None = "not loaded yet"
# Whether pygan._C registered CUDA kernels: read once when the library loads. The probes run on
# every op call (through _registry.resolve) and must stay traceable by torch.compile with
# fullgraph=True, which cannot trace the dispatcher query behind it.
_cuda_kernels_built = False


def extension_path() -> Path | None:
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = _PACKAGE_DIR / f"_C{suffix}"
        if path.exists():
            return path
    return None


def _has_kernel(op: str, key: str) -> bool:
    return torch._C._dispatch_has_kernel_for_dispatch_key(f"pygan::{op}", key)


def _cpp_status() -> _registry.BackendStatus:
    if _extension_error:
        return _registry.BackendStatus(False, _extension_error)
    return _registry.BackendStatus(True, "C++ CPU kernels of pygan._C")


def _cuda_status() -> _registry.BackendStatus:
    if _extension_error:
        return _registry.BackendStatus(False, _extension_error)
    if not _cuda_kernels_built:
        return _registry.BackendStatus(
            False, "pygan._C was built without CUDA kernels (no CUDA toolkit or GPU at build "
                   "time; rebuild with FORCE_CUDA=1 and CUDA_HOME set)")
    if not torch.cuda.is_available():
        return _registry.BackendStatus(False, "torch.cuda.is_available() is False")
    return _registry.BackendStatus(True, "CUDA kernels of pygan._C")


_triton_error: str | None = "not loaded yet"


def _triton_status() -> _registry.BackendStatus:
    if _triton_error:
        return _registry.BackendStatus(False, _triton_error)
    if torch.cuda.is_available():
        return _registry.BackendStatus(True, "Triton kernels (pygan.triton_kernels) on CUDA tensors")
    if os.environ.get("TRITON_INTERPRET") == "1":
        return _registry.BackendStatus(True, "Triton kernels under TRITON_INTERPRET=1 (CPU tensors)")
    return _registry.BackendStatus(False, "Triton needs a CUDA device, or TRITON_INTERPRET=1 to "
                                          "interpret its kernels on CPU tensors")


def load_triton(op_modules) -> None:
    """Import the Triton ops (namespace ``torch.ops.pygan_triton``) and register their fake
    kernels and autograd with the same helpers as the C++ ops."""
    global _triton_error
    _registry.register_probe("triton", _triton_status)
    try:
        import triton  # noqa: F401
    except ImportError as exc:
        _triton_error = f"triton is not installed ({exc})"
        return
    try:
        from pygan import triton_kernels
        triton_kernels.define_ops()
    except Exception as exc:  # a broken Triton install must not break `import pygan`
        _triton_error = f"the Triton kernels failed to load: {type(exc).__name__}: {exc}"
        return
    _triton_error = None
    for module in op_modules:
        module.register("pygan_triton")


def load(op_modules) -> None:
    """Load pygan._C once and register fake kernels and autograd for each op module."""
    global _extension_error, _cuda_kernels_built
    _registry.register_probe("cpp", _cpp_status)
    _registry.register_probe("cuda", _cuda_status)
    path = extension_path()
    if path is None:
        _extension_error = ("the compiled extension pygan._C is not built (install with "
                            "`pip install --no-build-isolation -e .`)")
    else:
        try:
            torch.ops.load_library(str(path))
            _extension_error = None
            _cuda_kernels_built = _has_kernel("pixel_norm", "CUDA")
        except (OSError, RuntimeError) as exc:
            _extension_error = f"pygan._C failed to load ({path.name}): {exc}"
    if _extension_error:
        if os.environ.get("PYGAN_QUIET_IMPORT") != "1":
            warnings.warn(f"pygan: {_extension_error}; only the reference backend is available",
                          RuntimeWarning, stacklevel=3)
        return
    for module in op_modules:
        module.register("pygan")
