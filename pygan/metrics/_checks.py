"""Input checks shared by the metrics: image batches and positive integers, with errors that name
the argument and say what was expected."""

from __future__ import annotations

import torch


def as_float_images(x, name: str, *, min_size: int = 1) -> torch.Tensor:
    """``x`` as a float32 (N, C, H, W) batch in [-1, 1].

    Accepts float tensors (taken to be in [-1, 1], pygan's convention) and uint8 tensors in
    [0, 255] (mapped to [-1, 1]). Raises TypeError/ValueError naming ``name`` otherwise.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of images (N, C, H, W), got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{name} must be a batch of images shaped (N, C, H, W), got shape {tuple(x.shape)}")
    if x.shape[1] not in (1, 3):
        raise ValueError(f"{name} must have 1 or 3 channels (dim 1), got shape {tuple(x.shape)}")
    if x.shape[0] < 1:
        raise ValueError(f"{name} holds no images (shape {tuple(x.shape)})")
    if min(x.shape[-2:]) < min_size:
        raise ValueError(f"{name} images must be at least {min_size}x{min_size}, got {x.shape[-2]}x{x.shape[-1]}")
    if x.dtype == torch.uint8:
        return x.float().div(127.5).sub(1.0)
    if not x.is_floating_point():
        raise TypeError(f"{name} must be float in [-1, 1] or uint8 in [0, 255], got dtype {x.dtype}")
    return x.float()


def positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value
