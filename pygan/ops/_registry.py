"""Backend registry: which implementation of an op runs for given tensors.

Backends
--------
``reference``  plain differentiable PyTorch (``pygan.ops.<op>_reference``); runs anywhere.
``cpp``        the C++ CPU kernels of ``pygan._C`` (namespace ``torch.ops.pygan``), CPU tensors.
``cuda``       the CUDA kernels of ``pygan._C`` (same namespace), CUDA tensors.
``triton``     the Triton kernels (namespace ``torch.ops.pygan_triton``), CUDA tensors, or CPU
               tensors under ``TRITON_INTERPRET=1``.
``auto``       the fastest available backend for the tensors' device, falling back to
               ``reference`` with one warning when nothing compiled can run.

The default comes from the environment variable ``PYGAN_BACKEND`` (else ``auto``) and is changed
with :func:`set_backend` or, for a block of code, :func:`use_backend`. Every op also takes a
``backend=`` keyword that overrides both.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import warnings
from collections.abc import Callable, Iterator

import torch

BACKENDS = ("reference", "cpp", "cuda", "triton", "auto")


@dataclasses.dataclass(frozen=True)
class BackendStatus:
    """Whether a backend can run in this process, and if not, why."""

    available: bool
    reason: str

    def __bool__(self) -> bool:
        return self.available


# Probes set by pygan.ops when it loads the compiled parts; each returns a BackendStatus.
_probes: dict[str, Callable[[], BackendStatus]] = {}

def _load_gpu_preference() -> dict[str, str]:
    """Per-op choice between ``cuda`` and ``triton`` for ``auto`` on CUDA tensors, written by
    ``benchmarks/select_gpu_backends.py`` from committed benchmark results; empty (CUDA C++
    everywhere) until such results exist."""
    path = os.path.join(os.path.dirname(__file__), "gpu_preference.json")
    try:
        with open(path) as f:
            table = json.load(f).get("preference", {})
    except FileNotFoundError:
        return {}
    return {op: b for op, b in table.items() if b in ("cuda", "triton")}


_gpu_preference: dict[str, str] = _load_gpu_preference()
_warned: set[str] = set()
# (op, backend) -> why ``auto`` must not pick that backend for that op (set by the self-test).
_disabled: dict[tuple[str, str], str] = {}


def disable_backend_for_op(op: str, backend: str, reason: str) -> None:
    """Make ``auto`` skip ``backend`` for ``op`` (the next candidate runs: the other GPU backend,
    else the reference), warning once with ``reason`` the first time it matters. An explicitly
    requested backend is still honoured. ``pygan.ops.selftest`` calls this for kernels that
    disagree with the reference."""
    if _validate(backend) in ("reference", "auto"):
        raise ValueError(f"backend must be a compiled backend (cpp, cuda or triton); got {backend!r}")
    _disabled[(op, backend)] = reason


def enable_backend_for_op(op: str, backend: str) -> None:
    """Undo :func:`disable_backend_for_op` (no-op when it was not disabled)."""
    _disabled.pop((op, backend), None)
    _warned.discard(f"disabled-{op}-{backend}")


def disabled_backends() -> dict[tuple[str, str], str]:
    """The (op, backend) pairs ``auto`` skips, with the reasons."""
    return dict(_disabled)


def _usable(op: str, candidate: str) -> bool:
    reason = _disabled.get((op, candidate))
    if reason is None:
        return bool(status(candidate))
    _warn_once(f"disabled-{op}-{candidate}", f"pygan: {op} does not use the {candidate} backend "
               f"({reason}); auto runs the next candidate for it")
    return False


def _validate(name: str) -> str:
    if not isinstance(name, str) or name not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}; got {name!r}")
    return name


_default = _validate(os.environ.get("PYGAN_BACKEND", "auto").strip() or "auto")


def set_backend(name: str) -> None:
    """Set the process-wide default backend (one of ``BACKENDS``)."""
    global _default
    _default = _validate(name)


def get_backend() -> str:
    """The current default backend name."""
    return _default


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Run a block with ``name`` as the default backend, restoring the previous one after."""
    global _default
    previous, _default = _default, _validate(name)
    try:
        yield
    finally:
        _default = previous


def register_probe(name: str, probe: Callable[[], BackendStatus]) -> None:
    _probes[name] = probe


def status(name: str) -> BackendStatus:
    _validate(name)
    if name == "reference":
        return BackendStatus(True, "plain PyTorch, always available")
    if name == "auto":
        return BackendStatus(True, "picks the fastest available backend per op and device")
    probe = _probes.get(name)
    if probe is None:
        return BackendStatus(False, f"the {name} backend is not implemented in this build of pygan")
    return probe()


def available_backends() -> dict[str, BackendStatus]:
    """Every backend name with whether it can run here and why not."""
    return {name: status(name) for name in BACKENDS}


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=4)


def resolve(op: str, backend: str | None, device: torch.device) -> str:
    """The concrete backend (``reference``, ``cpp``, ``cuda`` or ``triton``) that runs ``op``."""
    name = _default if backend is None else _validate(backend)
    if name == "reference":
        return name
    if name == "auto":
        if device.type == "cuda":
            preferred = _gpu_preference.get(op, "cuda")
            for candidate in (preferred, "triton" if preferred == "cuda" else "cuda"):
                if _usable(op, candidate):
                    return candidate
            _warn_once("auto-cuda", "pygan: no compiled GPU backend can run here "
                       f"(cuda: {status('cuda').reason}; triton: {status('triton').reason}); "
                       "using the reference PyTorch ops")
            return "reference"
        if device.type == "cpu" and _usable(op, "cpp"):
            return "cpp"
        return "reference"
    st = status(name)
    if not st:
        raise RuntimeError(f"pygan backend {name!r} was requested but cannot run: {st.reason}")
    expected = {"cpp": ("cpu",), "cuda": ("cuda",), "triton": ("cuda", "cpu")}[name]
    if device.type not in expected:
        raise ValueError(f"pygan backend {name!r} runs on {' or '.join(expected)} tensors; "
                         f"got tensors on {device}")
    if name == "triton" and device.type == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
        raise ValueError("pygan backend 'triton' runs on CPU tensors only under TRITON_INTERPRET=1")
    return name


def namespace(impl: str):
    """The ``torch.ops`` namespace holding the compiled ops of backend ``impl``."""
    return torch.ops.pygan_triton if impl == "triton" else torch.ops.pygan
