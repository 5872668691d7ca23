"""Argument checks shared by the model constructors and forwards."""

from __future__ import annotations

import torch

from ..nn._validate import choice, non_negative_int, positive_int, real

__all__ = ["batch", "choice", "non_negative_int", "positive_int", "power_of_two", "real"]


def power_of_two(name: str, value: object, *, low: int) -> int:
    positive_int(name, value)
    if value < low or value & (value - 1):
        raise ValueError(f"{name} must be a power of two >= {low}, got {value}")
    return value


def batch(name: str, x: object, shape: tuple) -> torch.Tensor:
    """``x`` must be a floating-point tensor (N, *shape), N >= 1."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if x.dim() != len(shape) + 1 or tuple(x.shape[1:]) != tuple(shape) or x.shape[0] == 0:
        expected = ", ".join(["N", *map(str, shape)])
        raise ValueError(f"{name} must have shape ({expected}) with N >= 1; got {tuple(x.shape)}")
    return x
