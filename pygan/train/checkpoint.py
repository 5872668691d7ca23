"""Checkpoint files: atomic writes, retention, and finding the latest one.

A checkpoint is one ``torch.save`` of a dict holding only tensors and plain Python values, so it
loads with ``torch.load(weights_only=True)`` (no pickled code runs on load). Files live in
``RUN_DIR/checkpoints``:

* ``step-00001234.pt`` — periodic (and on exit); the last ``keep`` of them are kept;
* ``res-0016.pt`` — ProGAN, written when training at 16x16 ends; never deleted.

**Atomic**: the data is written to ``.tmp-<name>-<pid>`` in the same directory, flushed and
fsync'd, then renamed over the final name (``os.replace`` is atomic on POSIX), and the directory is
fsync'd. A crash (or SIGKILL) mid-write leaves at most a temporary file, which is ignored and
cleaned up, and every earlier checkpoint intact.
"""

from __future__ import annotations

import os
import re

import torch

CHECKPOINT_DIR = "checkpoints"
_STEP = re.compile(r"^step-(\d+)\.pt$")
_RES = re.compile(r"^res-(\d+)\.pt$")


def checkpoint_dir(run_dir: str) -> str:
    return os.path.join(run_dir, CHECKPOINT_DIR)


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_save(obj: dict, path: str) -> None:
    """``torch.save(obj, path)`` via a temporary file, fsync and rename."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".tmp-{os.path.basename(path)}-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


def step_checkpoints(run_dir: str) -> list[tuple[int, str]]:
    """(step, path) of the periodic checkpoints, oldest first."""
    directory = checkpoint_dir(run_dir)
    if not os.path.isdir(directory):
        return []
    found = [(int(m.group(1)), os.path.join(directory, name))
             for name in os.listdir(directory) if (m := _STEP.match(name))]
    return sorted(found)


def latest(run_dir: str) -> str | None:
    """The newest periodic checkpoint of ``run_dir``, or None."""
    found = step_checkpoints(run_dir)
    return found[-1][1] if found else None


def save(state: dict, run_dir: str, step: int, keep: int) -> str:
    """Write ``step-<step>.pt`` atomically, then delete all but the newest ``keep`` periodic
    checkpoints (and stale temporary files). Returns the path written."""
    path = os.path.join(checkpoint_dir(run_dir), f"step-{step:08d}.pt")
    atomic_save(state, path)
    for _, old in step_checkpoints(run_dir)[:-keep]:
        os.remove(old)
    for name in os.listdir(checkpoint_dir(run_dir)):
        if name.startswith(".tmp-") and not name.endswith(f"-{os.getpid()}"):
            try:
                os.remove(os.path.join(checkpoint_dir(run_dir), name))
            except OSError:
                pass
    return path


def save_resolution(state: dict, run_dir: str, resolution: int) -> str:
    """ProGAN: the checkpoint kept for good once training at ``resolution`` is done."""
    path = os.path.join(checkpoint_dir(run_dir), f"res-{resolution:04d}.pt")
    atomic_save(state, path)
    return path


def resolution_checkpoints(run_dir: str) -> dict[int, str]:
    directory = checkpoint_dir(run_dir)
    if not os.path.isdir(directory):
        return {}
    return {int(m.group(1)): os.path.join(directory, name)
            for name in os.listdir(directory) if (m := _RES.match(name))}


def load(path: str, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``; clear errors for a missing or bad file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised with the path
        raise RuntimeError(f"could not load checkpoint {path}: {e}") from e


def find(run_dir_or_file: str) -> str:
    """A checkpoint file given a file, or the latest one of a run directory."""
    if os.path.isfile(run_dir_or_file):
        return run_dir_or_file
    if not os.path.isdir(run_dir_or_file):
        raise FileNotFoundError(f"no run directory or checkpoint file at {run_dir_or_file}")
    path = latest(run_dir_or_file)
    if path is None:
        res = resolution_checkpoints(run_dir_or_file)
        if res:
            return res[max(res)]
        raise FileNotFoundError(f"{run_dir_or_file} holds no checkpoint under {CHECKPOINT_DIR}/")
    return path
