"""``python -m pygan.train <model>``: the training CLI (see ``--help``).

Modules, one job each: :mod:`.config` (presets, command line, config files), :mod:`.runner`
(the run's life: loop, checkpoints, signals, NaN guard), :mod:`.checkpoint` (atomic files),
:mod:`.schedule` (ProGAN's growth), :mod:`.batches` (resumable, sharded data order),
:mod:`.monitor` (progress bar, TensorBoard, grids), :mod:`.distributed` (torchrun), and the
per-model loops ``loop_gan`` (gan, dcgan, lsgan), ``loop_wgan`` (wgan, wgan-gp),
``loop_cyclegan`` and ``loop_progan``.
"""

from __future__ import annotations

import importlib

from .config import MODELS, resolve

_LOOPS = {"gan": "loop_gan", "dcgan": "loop_gan", "lsgan": "loop_gan", "wgan": "loop_wgan",
          "wgan-gp": "loop_wgan", "cyclegan": "loop_cyclegan", "progan": "loop_progan"}


def trainer_class(model: str):
    """The Trainer class that trains ``model``."""
    return importlib.import_module(f".{_LOOPS[model]}", __name__).Trainer


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), train, return the exit code."""
    from .runner import run, setup_error
    try:
        cfg = resolve(argv)
    except (ValueError, OSError, RuntimeError) as e:
        return setup_error(e)      # one line (from rank 0 only under torchrun), exit code 2
    return run(cfg, trainer_class(cfg["model"]))


__all__ = ["MODELS", "main", "resolve", "trainer_class"]
