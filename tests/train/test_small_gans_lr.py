"""Learning-rate plumbing shared by every trainer (runner.py): the configured rate reaches the
optimisers and the TensorBoard ``lr/<net>`` scalars, and learning-rate schedulers travel in
checkpoints so a resumed run continues the same curve. (Only CycleGAN has a schedule today,
and only ProGAN an EMA generator; their own tests check the curve and the EMA through their
loops.)"""

from __future__ import annotations

import pytest
import torch

from pygan.train import config, main, trainer_class


def _trainer(model, tmp_path, tiny_settings, *extra):
    TINY, QUIET = tiny_settings
    cfg = config.resolve([model, "--out", str(tmp_path / "run"), "--device", "cpu", *TINY[model],
                          *QUIET, *extra])
    return trainer_class(model)(cfg, torch.device("cpu"), 0, 1)


def test_logged_learning_rate_is_the_configured_one(tmp_path, tiny):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    assert main(tiny("wgan", run, "--max-steps", "2", "--log-every", "1", "--lr", "3.5e-5",
                     "--tensorboard", "true", "--eval-every", "0")) == 0
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    for net in ("G", "D"):
        values = [e.value for e in events.Scalars(f"lr/{net}")]
        assert len(values) == 2 and values == pytest.approx([3.5e-5] * 2, rel=1e-6)


# the schedulers step here without training steps in between, which torch warns about
@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before `optimizer.step\\(\\)`")
def test_schedulers_resume_on_the_same_curve(tmp_path, tiny_settings):
    """A trainer's schedulers (here a LambdaLR lr_0 / (1 + epoch) on each optimiser) are saved
    with the checkpoint state and restored: the resumed trainer's next rates equal the
    uninterrupted one's."""
    def attach(t):
        t.schedulers = {k: torch.optim.lr_scheduler.LambdaLR(o, lambda e: 1 / (1 + e))
                        for k, o in t.optimizers.items()}
        return t

    a = attach(_trainer("dcgan", tmp_path, tiny_settings, "--lr", "1e-3"))
    for _ in range(3):
        for s in a.schedulers.values():
            s.step()
    state = a.state_dict([torch.get_rng_state()])
    b = attach(_trainer("dcgan", tmp_path, tiny_settings, "--lr", "1e-3"))
    b.load_state_dict(state)
    for t in (a, b):
        for s in t.schedulers.values():
            s.step()
    for k in a.optimizers:
        assert b.optimizers[k].param_groups[0]["lr"] == pytest.approx(1e-3 / 5, rel=1e-12)
        assert b.optimizers[k].param_groups[0]["lr"] == a.optimizers[k].param_groups[0]["lr"]
