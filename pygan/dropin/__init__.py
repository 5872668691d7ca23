"""``pygan.accelerate(model)``: existing GAN code, unchanged, on pygan's fused ops.

    import pygan
    report = pygan.accelerate(generator)      # in place; returns what was replaced
    print(report)                              # module | was | now (or why it was left alone)

What is replaced, only where the maths are identical (see ``_fused`` for each formula):

* weight-scaled ("equalized learning rate") convolutions and linears of the user's own class
  (one nn.Conv2d / nn.ConvTranspose2d / nn.Linear inside, a float scale on its input or output,
  the bias inside the layer or beside it) -> bias-free layer + ``ops.bias_lrelu``;
* an nn.LeakyReLU / nn.ReLU directly after a conv or linear (torch's or weight-scaled), and a
  pixel norm after that, inside an nn.Sequential or a block whose forward torch.fx can trace ->
  folded into ``ops.bias_lrelu`` / ``ops.bias_lrelu_pixel_norm``;
* pixel-norm modules ``x / sqrt(mean(x^2, dim=1) + eps)`` (eps read from the module) ->
  ``ops.pixel_norm``;
* nn.InstanceNorm2d without running statistics (+ ReLU / LeakyReLU) -> ``ops.instance_norm_act``,
  and a residual block ``x + block(x)`` whose block ends in one -> ``instance_norm_act(residual=x)``;
* minibatch-stddev modules and methods (whole batch or groups, biased or unbiased as
  ``torch.std``, one statistic) -> ``ops.minibatch_std``;
* fade-in methods ``[tanh](alpha * a + (1 - alpha) * b)`` -> ``ops.fade_in``.

How: the replaced code's ``forward`` (or method) is shadowed by an instance attribute; the class,
the parameters (the same objects), the state_dict keys, shared modules, train/eval, hooks,
``torch.compile`` and DDP are untouched. A module with hooks is left alone (its hooks would see
other values). With ``verify=True`` each replacement is run beside the original on a probe input
in the model's dtype and device — outputs and input gradients must agree to that dtype's
tolerance — and is dropped, with the reason, when they do not. :func:`restore` undoes everything.
"""

from __future__ import annotations

import torch
from torch import nn

from .. import ops
from . import _fused
from ._plan import Group, Planner
from ._report import AccelerateReport, Replacement

#: Largest |patched - original| allowed on a probe, relative to the largest |original| value.
TOLERANCE = {torch.float64: 1e-9, torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 4e-2}


def accelerate(model: nn.Module, *, backend: str | None = None, verify: bool = True,
               dry_run: bool = False) -> AccelerateReport:
    """Replace, in place, the parts of ``model`` that pygan computes with fused ops.

    Args:
        model: any nn.Module (a generator, a critic, a whole GAN).
        backend: the backend the replacements use (None: pygan's default, see
            :mod:`pygan.ops`).
        verify: check every replacement against the original on a probe input (outputs and
            input gradients) and keep only those that agree.
        dry_run: report what would be replaced, change nothing.

    Returns: an :class:`AccelerateReport`; ``print`` it for the table.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if backend is not None and backend not in ops.BACKENDS:
        raise ValueError(f"backend must be None or one of {ops.BACKENDS}; got {backend!r}")
    for name, value in (("verify", verify), ("dry_run", dry_run)):
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    planner = Planner(model, backend)
    rows: list[Replacement] = []
    applied: list[Group] = []
    for group in planner.plan():
        for change in group.changes:
            change.apply()
        why = _verify(group) if verify else None
        if why is None:
            applied.append(group)
            rows += group.rows
        else:
            for change in group.changes:
                change.undo()
            rows += [Replacement(r.path, r.was, reason=why) for r in group.rows]
    rows += planner.left_alone({r.path for r in rows})
    if dry_run:
        for group in applied:
            for change in group.changes:
                change.undo()
    return AccelerateReport(rows, dry_run=dry_run, verified=verify)


def restore(model: nn.Module) -> int:
    """Undo :func:`accelerate` on ``model``; returns how many attributes were restored."""
    count = 0
    for m in model.modules():
        for attr, value in list(vars(m).items()):
            if isinstance(value, _fused._Patch):
                delattr(m, attr)
                count += 1
    return count


def _verify(group: Group) -> str | None:
    """None when every probe of the group agrees; else why not."""
    for check in group.checks:
        param = next(iter(check.like.parameters()), None)
        dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
        device = param.device if param is not None else torch.device("cpu")
        inputs = check.make_inputs(dtype, device)
        try:
            want = _run(check.original, inputs, check.like)
            got = _run(check.patched, inputs, check.like)
        except Exception as err:  # noqa: BLE001 - a probe the code cannot run proves nothing
            return f"could not verify on a probe ({type(err).__name__}: {err})"
        for what, a, b in zip(("output", *(f"input gradient {i}" for i in range(len(want) - 1))),
                              got, want):
            if a is None and b is None:
                continue
            if a is None or b is None or a.shape != b.shape:
                return f"verification failed: {what} differs in shape or presence"
            scale = max(float(b.abs().max()), 1e-30)
            err = float((a.double() - b.double()).abs().max()) / scale
            if not err <= TOLERANCE[dtype]:
                return (f"verification failed: {what} differs by {err:.2e} relative "
                        f"(tolerance {TOLERANCE[dtype]:g} in {dtype})")
    return None


def _run(fn, inputs: list, like: nn.Module) -> list:
    """fn(*inputs) and the gradients of <out, fixed random> w.r.t. the tensor inputs, with the
    same random state for both runs and the module's buffers left as they were."""
    saved = [b.detach().clone() for b in like.buffers()]
    args = [t.detach().clone().requires_grad_(True) if isinstance(t, torch.Tensor) else t
            for t in inputs]
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    devices = [t.device for t in tensors if t.device.type == "cuda"]
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(0)
            out = fn(*args)
        weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(5),
                              dtype=torch.float64).to(out.device, out.dtype)
        grads = torch.autograd.grad(out, tensors, weights, allow_unused=True)
    finally:
        with torch.no_grad():
            for b, s in zip(like.buffers(), saved):
                b.copy_(s)
    return [out.detach(), *(None if g is None else g.detach() for g in grads)]


__all__ = ["AccelerateReport", "Replacement", "TOLERANCE", "accelerate", "restore"]
