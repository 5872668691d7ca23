"""Data-parallel training under ``torchrun``: process group, rank, and gradient averaging.

``torchrun --nproc-per-node N -m pygan.train ...`` sets RANK / WORLD_SIZE / LOCAL_RANK; without
them the run is a single process. Networks are wrapped in
:class:`torch.nn.parallel.DistributedDataParallel` (``wrap``), which broadcasts rank 0's weights
at construction. Gradients are averaged across ranks by :func:`average_gradients` after each
backward pass rather than by DDP's backward hooks: the WGAN-GP / ProGAN critic step differentiates
the critic twice (``autograd.grad(create_graph=True)`` for the penalty, then the loss's
backward), which DDP's reducer does not support, and several forward passes of one network feed
one backward pass in every GAN step. Averaging after backward gives the same update as DDP's
hooks would: the mean of the ranks' gradients. DDP's forward still keeps buffers (BatchNorm
running statistics) in sync from rank 0 (its default buffer broadcast).
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn


def env_world() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's environment, (0, 1, 0) without it."""
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_RANK", 0)))


def init(device: torch.device) -> tuple[int, int]:
    """Join the process group when launched by torchrun (gloo on CPU, nccl on CUDA)."""
    rank, world, _ = env_world()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world


def is_main() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def wrap(module: nn.Module, device: torch.device) -> nn.Module:
    """DDP around ``module`` in a multi-process run (hooks unused: see the module docstring)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return module
    ids = [device.index] if device.type == "cuda" else None
    # buffers (BatchNorm statistics) follow rank 0 in every forward: DDP's default
    ddp = nn.parallel.DistributedDataParallel(module, device_ids=ids)
    ddp.require_backward_grad_sync = False   # averaged by average_gradients instead
    return ddp


def unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


def average_gradients(params) -> None:
    """Mean of every parameter's gradient over the ranks (no-op in a single process)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def any_flag(flag: bool, device: torch.device) -> bool:
    """True on every rank when ``flag`` is True on any (stop requests, non-finite losses)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
