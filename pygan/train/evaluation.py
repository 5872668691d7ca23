"""Training-time evaluation: every ``eval_every`` images (and once more when the run ends), score
the generator with :mod:`pygan.metrics`, log each result to TensorBoard as ``eval/<key>``, append
a row to ``RUN_DIR/eval.jsonl``, and keep ``RUN_DIR/checkpoints/best.pt`` for the best value of
``best_metric`` so far.

What is scored is each trainer's business (:meth:`Trainer.evaluate`): samples from fixed latents
against a fixed subset of the real data (so successive rows are comparable), and for CycleGAN the
translation accuracy against the ground-truth pairs. Evaluation draws its own random numbers from
seeded generators and never touches the training RNG, so a run with evaluation ends with the same
weights as one without, and resumes exactly. Which evaluation is the best, and when the last one
ran, travel in every checkpoint.

ProGAN: only evaluations at the final resolution with the new block fully faded in (alpha = 1)
compete for ``best.pt``; earlier ones are logged but score a different task.
"""

from __future__ import annotations

import json
import os
import time

import torch

from ..metrics.evaluate import improves, parse_metrics
from ..metrics.features import get_feature_extractor
from . import checkpoint, distributed

EVAL_LOG = "eval.jsonl"
BEST_NAME = "best.pt"


class Evaluator:
    """Decides when to evaluate, runs the trainer's evaluation on rank 0, records and keeps the
    best checkpoint. ``state_dict`` holds what resume needs (best value, last evaluation)."""

    def __init__(self, cfg: dict, run_dir: str, main: bool) -> None:
        self.every = int(cfg["eval_every"])
        self.metrics = parse_metrics(cfg["eval_metrics"])
        self.n = int(cfg["eval_n"])
        self.best_metric = cfg["best_metric"]
        self.inception_weights = cfg.get("inception_weights")
        self.seed = int(cfg["seed"])
        self.run_dir, self.main = run_dir, main
        self.best: float | None = None
        self.best_step: int | None = None
        self.last_images = 0
        self._extractor = None
        self._warned_missing = False

    @property
    def enabled(self) -> bool:
        return self.every > 0

    def due(self, images_seen: int) -> bool:
        """True once ``images_seen`` crosses the next multiple of ``eval_every``."""
        return self.enabled and images_seen // self.every > self.last_images // self.every

    def extractor(self, device: torch.device):
        if self._extractor is None and {"fid", "kid", "pr"} & set(self.metrics):
            kind = "inception" if self.inception_weights else "bundled"
            self._extractor = get_feature_extractor(kind, self.inception_weights, device)
        return self._extractor

    def __call__(self, run) -> dict[str, float] | None:
        """Evaluate now (collective under torchrun: every rank calls it); returns the results on
        rank 0."""
        t = run.trainer
        self.last_images = t.images_seen
        results, improved = None, False
        if self.main:
            start = time.perf_counter()
            # building the feature net and anything inside the metrics may draw from the global
            # RNG: fork it so that training's random stream is the same with or without evaluation
            devices = [t.device] if t.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                results = t.evaluate(self.metrics, self.n, self.seed, self.extractor(t.device))
            seconds = time.perf_counter() - start
            value = results.get(self.best_metric)
            if t.competes_for_best():
                if value is None and not self._warned_missing:
                    run.monitor.write(f"evaluation: no {self.best_metric!r} in the results "
                                      f"({', '.join(results) or 'none'}); checkpoints/{BEST_NAME} "
                                      "is not kept (choose another --best-metric)")
                    self._warned_missing = True
                if value is not None and improves(self.best_metric, value, self.best):
                    self.best, self.best_step, improved = value, t.step, True
            self._record(t, results, improved, seconds)
            run.monitor.scalars({f"eval/{k}": v for k, v in results.items()}, t.step)
            shown = "  ".join(f"{k} {v:.4g}" for k, v in results.items())
            run.monitor.write(f"eval at {t.images_seen} images (step {t.step}, {seconds:.1f} s): "
                              f"{shown}" + ("  [best]" if improved else ""))
        if distributed.any_flag(improved, t.device):
            run.save_checkpoint(best=True)
        return results

    def _record(self, trainer, results: dict, best: bool, seconds: float) -> None:
        row = {"step": trainer.step, "images_seen": trainer.images_seen, **trainer.eval_context(),
               "results": results, "best": best, "seconds": round(seconds, 2)}
        with open(os.path.join(self.run_dir, EVAL_LOG), "a") as f:
            f.write(json.dumps(row) + "\n")

    def best_path(self) -> str:
        return os.path.join(checkpoint.checkpoint_dir(self.run_dir), BEST_NAME)

    def state_dict(self) -> dict:
        return {"best": self.best, "best_step": self.best_step, "best_metric": self.best_metric,
                "last_images": self.last_images}

    def load_state_dict(self, state: dict | None) -> None:
        if not state:
            return
        self.last_images = int(state.get("last_images", 0))
        if state.get("best_metric") == self.best_metric:   # a changed --best-metric starts afresh
            self.best, self.best_step = state.get("best"), state.get("best_step")
