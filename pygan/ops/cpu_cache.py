"""pygan's CPU output cache: freed outputs of the C++ CPU kernels kept for the next output of the
same size, as PyTorch's caching allocator does on CUDA.

Every op output is a new tensor; glibc returns blocks over 32 MiB to the OS when they die, so each
step's outputs fault their pages in afresh (the OS zeroes every 4 KiB page on the kernel's first
write). Where that costs much (the benchmarks print it: ~11 ms per 32 MiB on the README's 2-core
VM, against ~0.6 ms to overwrite resident pages) it outweighed the kernels' own work. Outputs of
at least 1 MiB of every op's C++ CPU kernels (outputs and input gradients; csrc/*.cpp) take their
storage from this cache; everything else uses PyTorch's allocator. csrc/output_cache.h has the
details.

The cache holds at most ``PYGAN_CPU_CACHE_MB`` MiB (read once, when the cache is first used;
default 512, ``0`` disables it) of freed blocks, or what :func:`set_limit` says::

    import pygan.ops.cpu_cache as cpu_cache
    cpu_cache.info()          # CacheInfo(limit_bytes=..., cached_bytes=..., ...)
    cpu_cache.empty()         # give the cached blocks back to the OS
    cpu_cache.set_limit(0)    # no cache from now on
"""

from __future__ import annotations

import dataclasses

import torch

from . import _library


@dataclasses.dataclass(frozen=True)
class CacheInfo:
    limit_bytes: int    #: most bytes of freed blocks the cache keeps
    cached_bytes: int   #: bytes of freed blocks it keeps now
    cached_blocks: int  #: how many blocks that is
    hits: int           #: outputs served from the cache since the process started
    misses: int         #: outputs that needed a fresh block


def _ops():
    if _library._extension_error:
        raise RuntimeError(f"pygan.ops.cpu_cache needs the C++ extension: {_library._extension_error}")
    return torch.ops.pygan_cpu_cache


def info() -> CacheInfo:
    """The cache's limit, contents and hit counts."""
    return CacheInfo(*_ops().info())


def empty() -> None:
    """Free every cached block (outputs still alive keep theirs, and return them when they die)."""
    _ops().empty()


def set_limit(limit_bytes: int) -> None:
    """Keep at most ``limit_bytes`` of freed blocks (0: none, the cache is off); blocks over the new
    limit are freed at once."""
    if isinstance(limit_bytes, bool) or not isinstance(limit_bytes, int) or limit_bytes < 0:
        raise ValueError(f"set_limit: limit_bytes must be an int >= 0, got {limit_bytes!r}")
    _ops().set_limit(limit_bytes)
