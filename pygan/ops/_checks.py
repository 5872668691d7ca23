"""Argument checks shared by the ops: each raises TypeError or ValueError naming the argument and
what was expected, before any kernel runs."""

from __future__ import annotations

import math

import torch

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def tensor(name: str, t: object, *, min_dim: int | None = None, dim: int | None = None,
           layout: str = "") -> torch.Tensor:
    """``t`` must be a floating-point tensor with ``dim`` (or at least ``min_dim``) dimensions."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{name} must be float16, bfloat16, float32 or float64; got {t.dtype}")
    shape = f"{layout} " if layout else ""
    if dim is not None and t.dim() != dim:
        raise ValueError(f"{name} must be a {dim}-d tensor {shape}; got shape {tuple(t.shape)}")
    if min_dim is not None and t.dim() < min_dim:
        raise ValueError(f"{name} must have at least {min_dim} dimensions {shape}; "
                         f"got shape {tuple(t.shape)}")
    return t


def same_device(**named: torch.Tensor | None) -> None:
    items = [(k, v) for k, v in named.items() if v is not None]
    first_name, first = items[0]
    for name, t in items[1:]:
        if t.device != first.device:
            raise ValueError(f"{name} is on {t.device} but {first_name} is on {first.device}; "
                             "all tensor arguments must be on the same device")


def same_dtype(**named: torch.Tensor) -> None:
    (first_name, first), *rest = named.items()
    for name, t in rest:
        if t.dtype != first.dtype:
            raise TypeError(f"{name} has dtype {t.dtype} but {first_name} has {first.dtype}; "
                            "they must match")


def number(name: str, value: object, *, low: float | None = None, high: float | None = None,
           low_open: bool = False) -> float:
    """``value`` must be a real number (not a tensor) inside the given bounds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a Python number (int or float), got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if low is not None and (value <= low if low_open else value < low):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")
    return value


def integer(name: str, value: object, *, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return value
