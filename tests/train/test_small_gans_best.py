"""``checkpoints/best.pt`` keeps the best evaluation by ``--best-metric`` in that metric's
direction: lower is better for SWD, FID, KID and MS-SSIM (ProGAN's diversity reading), higher
for precision/recall/density/coverage and CycleGAN's PSNR/SSIM. The scores are scripted, so the
best one is known; it is never the first or the last, and the lowest and highest differ.
(ProGAN's rule that only the final resolution competes is tested with ProGAN.)"""

from __future__ import annotations

import json

import pytest
import torch

from pygan.train import main, trainer_class
from pygan.train.evaluation import Evaluator

SCORES = [5.0, 3.0, 7.0, 2.0, 6.0, 4.0]
# the running best, in each direction, after each evaluation
LOWER_BEST = {0: 5.0, 1: 3.0, 3: 2.0}        # evaluation index -> new best
HIGHER_BEST = {0: 5.0, 2: 7.0}


class _Monitor:
    def write(self, message):
        pass

    def scalars(self, values, step):
        pass


class _Trainer:
    device = torch.device("cpu")

    def __init__(self, key):
        self.key, self.step, self.images_seen = key, 0, 0

    def evaluate(self, metrics, n, seed, extractor):
        return {self.key: SCORES[self.step - 1], "other": -SCORES[self.step - 1]}

    def competes_for_best(self):
        return True

    def eval_context(self):
        return {}


class _Run:
    def __init__(self, trainer):
        self.trainer, self.monitor, self.saved_at = trainer, _Monitor(), []

    def save_checkpoint(self, best=False):
        assert best
        self.saved_at.append(self.trainer.step)


@pytest.mark.parametrize("key,metrics,lower", [("fid", "fid", True), ("swd", "swd", True),
                                               ("kid", "kid", True), ("recall", "pr", False),
                                               ("precision", "pr", False)])
def test_evaluator_keeps_the_best_in_the_metrics_direction(key, metrics, lower, tmp_path):
    cfg = {"eval_every": 10, "eval_metrics": metrics, "eval_n": 16, "best_metric": key, "seed": 0}
    ev = Evaluator(cfg, str(tmp_path), main=True)
    t = _Trainer(key)
    run = _Run(t)
    for i in range(len(SCORES)):
        t.step, t.images_seen = i + 1, 10 * (i + 1)
        assert ev.due(t.images_seen)
        ev(run)
    expected = LOWER_BEST if lower else HIGHER_BEST
    best_index = max(expected)
    assert run.saved_at == [i + 1 for i in expected], "best.pt written exactly when the score improved"
    assert (ev.best, ev.best_step) == (expected[best_index], best_index + 1)
    rows = [json.loads(line) for line in (tmp_path / "eval.jsonl").read_text().splitlines()]
    assert [r["best"] for r in rows] == [i in expected for i in range(len(SCORES))]
    # what a resume restores: the best so far, unless --best-metric changed
    again = Evaluator(cfg, str(tmp_path), main=True)
    again.load_state_dict(ev.state_dict())
    assert (again.best, again.best_step) == (ev.best, ev.best_step)
    other = Evaluator({**cfg, "best_metric": "fid" if key != "fid" else "swd",
                       "eval_metrics": "fid,swd"}, str(tmp_path), main=True)
    other.load_state_dict(ev.state_dict())
    assert other.best is None


def test_translation_psnr_higher_is_better(tmp_path):
    cfg = {"eval_every": 10, "eval_metrics": "fid", "eval_n": 16, "best_metric": "psnr_AtoB", "seed": 0}
    ev, t = Evaluator(cfg, str(tmp_path), main=True), _Trainer("psnr_AtoB")
    run = _Run(t)
    for i in range(len(SCORES)):
        t.step, t.images_seen = i + 1, 10 * (i + 1)
        ev(run)
    assert run.saved_at == [1, 3] and ev.best == 7.0


@pytest.mark.parametrize("key,metrics,best_step", [("fid", "fid", 4), ("recall", "pr", 3)])
def test_best_checkpoint_of_a_run_is_the_best_step(key, metrics, best_step, tmp_path, tiny,
                                                   monkeypatch):
    """A real 6-step gan run evaluated after every step (scores scripted by step): best.pt holds
    the weights of the best step, which are not the final ones, and eval.jsonl marks that row."""
    cls = trainer_class("gan")
    monkeypatch.setattr(cls, "evaluate", lambda self, m, n, seed, ex: {key: SCORES[self.step - 1]})
    weights = {}
    real_step = cls.train_step

    def train_step(self):
        out = real_step(self)
        weights[self.step + 1] = {k: v.detach().clone() for k, v in self.G.state_dict().items()}
        return out

    monkeypatch.setattr(cls, "train_step", train_step)
    run = tmp_path / "run"
    assert main(tiny("gan", run, "--max-steps", "6", "--eval-every", "8", "--eval-metrics", metrics,
                     "--best-metric", key)) == 0
    rows = [json.loads(line) for line in (run / "eval.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [r["step"] for r in rows if r["best"]][-1] == best_step
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    assert best["step"] == best_step and best["evaluation"]["best"] == SCORES[best_step - 1]
    for k, v in best["nets"]["G"].items():
        assert torch.equal(v, weights[best_step][k])
    assert any(not torch.equal(v, weights[6][k]) for k, v in best["nets"]["G"].items())


def test_metrics_needing_16x16_are_left_out_below_it(tmp_path, tiny):
    """An 8x8 gan evaluated with fid, swd and msssim: the two that need 16x16 images are left
    out of each evaluation (not a crash), and FID still picks best.pt."""
    run = tmp_path / "run"
    assert main(tiny("gan", run, "--resolution", "8", "--max-steps", "2", "--eval-every", "8",
                     "--eval-metrics", "fid,swd,msssim", "--best-metric", "fid")) == 0
    rows = [json.loads(line) for line in (run / "eval.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(set(r["results"]) == {"fid"} for r in rows)
    assert (run / "checkpoints" / "best.pt").is_file()
