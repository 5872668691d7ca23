"""Nothing lost: atomic checkpoints, the NaN guard, SIGTERM/SIGINT checkpoints, exact resume
after SIGKILL."""

import json
import os
import signal
import subprocess
import sys

import pytest
import torch

import pygan.losses
from pygan.train import checkpoint, main
from pygan.train.runner import FAULT_ENV



def test_crash_during_checkpoint_write_keeps_previous(tmp_path, monkeypatch):
    run = str(tmp_path)
    good = {"w": torch.arange(4.0), "step": 1}
    checkpoint.save(good, run, 1, keep=3)

    def broken_save(obj, f):
        f.write(b"partial bytes of a checkpoint")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(checkpoint.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save({"w": torch.zeros(4), "step": 2}, run, 2, keep=3)
    monkeypatch.undo()
    assert checkpoint.latest(run).endswith("step-00000001.pt")
    assert torch.equal(checkpoint.load(checkpoint.latest(run))["w"], good["w"])
    assert os.listdir(os.path.join(run, "checkpoints")) == ["step-00000001.pt"]   # no temp file


def test_keeps_last_k(tmp_path):
    for step in range(1, 6):
        checkpoint.save({"step": step}, str(tmp_path), step, keep=2)
    assert [s for s, _ in checkpoint.step_checkpoints(str(tmp_path))] == [4, 5]


def test_nan_loss_stops_with_message_and_keeps_last_good(tmp_path, monkeypatch, tiny, capsys):
    real_loss = pygan.losses.bce_discriminator_loss
    calls = {"n": 0}

    def loss_going_nan(*args, **kwargs):
        calls["n"] += 1
        out = real_loss(*args, **kwargs)
        return out * float("nan") if calls["n"] >= 4 else out

    monkeypatch.setattr(pygan.losses, "bce_discriminator_loss", loss_going_nan)
    code = main(tiny("gan", tmp_path, "--max-steps", "10", "--checkpoint-every", "2"))
    assert code == 3
    err = capsys.readouterr().err
    assert "non-finite loss at step 4" in err and "loss_D = nan" in err and "--resume" in err
    assert [s for s, _ in checkpoint.step_checkpoints(str(tmp_path))] == [2]
    state = torch.load(checkpoint.latest(str(tmp_path)), weights_only=True)
    assert all(torch.isfinite(v).all() for v in state["nets"]["G"].values())


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_writes_checkpoint_before_exit(signum, tmp_path, monkeypatch, tiny):
    real_loss = pygan.losses.bce_discriminator_loss
    calls = {"n": 0}

    def loss_then_signal(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            os.kill(os.getpid(), signum)       # arrives during step 2
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(pygan.losses, "bce_discriminator_loss", loss_then_signal)
    code = main(tiny("gan", tmp_path, "--max-steps", "50", "--checkpoint-every", "100"))
    assert code == 128 + int(signum)
    assert [s for s, _ in checkpoint.step_checkpoints(str(tmp_path))] == [2]


def _train(args, env_extra=None):
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "pygan.train", *args], env=env,
                          capture_output=True, text=True, timeout=300)


def test_sigkill_then_resume_equals_uninterrupted(tmp_path, tiny_settings):
    """ProGAN (schedule, EMA, fade-in, RNG, data order, evaluation every 16 images): killed with
    SIGKILL after step 6 (last checkpoint at step 4), resumed, it ends with bit-identical weights
    and optimiser state, and the same evaluations and best checkpoint."""
    TINY, QUIET = tiny_settings
    common = [*TINY["progan"], *QUIET, "--deterministic", "true", "--checkpoint-every", "4",
              "--keep-checkpoints", "5", "--eval-every", "16", "--eval-metrics", "fid",
              "--best-metric", "fid"]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    r = _train(["progan", "--out", str(whole), *common])
    assert r.returncode == 0, r.stderr
    r = _train(["progan", "--out", str(killed), *common], {FAULT_ENV: "kill:6"})
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert [s for s, _ in checkpoint.step_checkpoints(str(killed))] == [4]
    r = _train(["progan", "--resume", str(killed), "--progress", "false"])
    assert r.returncode == 0, r.stderr
    a = torch.load(checkpoint.latest(str(whole)), weights_only=True)
    b = torch.load(checkpoint.latest(str(killed)), weights_only=True)
    assert a["step"] == b["step"] == 12
    for net in ("G", "D", "G_ema"):
        for k, v in a["nets"][net].items():
            assert torch.equal(v, b["nets"][net][k]), (net, k)
    for name in ("G", "D"):
        for pid, st in a["optimizers"][name]["state"].items():
            assert torch.equal(st["exp_avg_sq"], b["optimizers"][name]["state"][pid]["exp_avg_sq"])
    with open(killed / "config.json") as f:
        assert json.load(f)["model"] == "progan"
    rows_whole, rows_killed = ((run / "eval.jsonl").read_text().splitlines() for run in (whole, killed))
    strip = [json.loads(r) for r in rows_whole], [json.loads(r) for r in rows_killed]
    for rows in strip:
        for r in rows:
            r.pop("seconds")
    assert [r["step"] for r in strip[0]] == [4, 8, 12]
    assert strip[0] == strip[1]
    best_a, best_b = (torch.load(run / "checkpoints" / "best.pt", weights_only=True) for run in (whole, killed))
    assert best_a["step"] == best_b["step"] and best_a["evaluation"] == best_b["evaluation"]
