"""ProGAN's training recipe, checked by recomputing it: tests that fail when the maths are wrong.

A tiny ProGAN (8x8 final, 8/16 feature maps, batch 4, 16 images per phase) is trained in this
process step by step. Each test recomputes what the step should have done from the config, with
its own code (not the loop's), and compares:

* every network's parameters change over a short run (G, D and the EMA generator);
* the critic's loss is E[D(G(z))] - E[D(x)] + lambda * GP + eps_drift * E[D(x)^2] recomputed on
  a copy of D from the inputs D was called with, the penalty's x_hat lies on the line from fake
  to real with one coefficient per sample, and D's new weights are one Adam step on the gradient
  of that recomputed loss; the same for G's -E[D(G(z))] through the updated D;
* the EMA generator is beta * old + (1 - beta) * G after every step;
* D sees reals faded as alpha * x + (1 - alpha) * up(box(x)) with the schedule's alpha, and
  mirrored images with --mirror;
* Adam's state is reset exactly where the official train.py resets it (floor or ceil of lod
  changes), and never with --reset-optimizer false;
* ProGANSchedule equals a transcription of the official TrainingSchedule for both presets,
  including training on at the final resolution until --kimg;
* --loss lsgan: the loss terms and the adaptive noise strength recomputed from D's outputs;
* best.pt keeps the best SWD, counting only evaluations at the final resolution with alpha 1.
"""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch

import pygan.ops as ops
from pygan.models import progan
from pygan.train import config, main
from pygan.train.loop_progan import ProGANTrainer
from pygan.train.schedule import ProGANSchedule

TINY = ["--resolution", "8", "--fmap-base", "16", "--fmap-max", "8", "--latent-dim", "8",
        "--batch-size", "4", "--fade-kimg", "0.016", "--stable-kimg", "0.016"]
QUIET = ["--progress", "false", "--tensorboard", "false", "--eval-every", "0", "--device", "cpu"]


_DATASETS: dict = {}


@pytest.fixture(autouse=True)
def reuse_the_bundled_cache(monkeypatch):
    """One in-process MultiResCache per (data, resolution) for these tests (reading the emoji
    set takes ~2 s per trainer otherwise); the cache is read-only, so sharing changes nothing."""
    import pygan.train.loop_progan as loop

    real = loop.get_dataset

    def get_dataset(name, resolution, channels=None, **kwargs):
        key = (name, resolution, channels)
        if key not in _DATASETS:
            _DATASETS[key] = real(name, resolution, channels, **kwargs)
        return _DATASETS[key]
    monkeypatch.setattr(loop, "get_dataset", get_dataset)


class StubRun:
    """What ProGANTrainer.before_step asks of a Run, doing nothing (no files)."""

    def save_grid(self, name=None):
        pass

    def save_resolution_checkpoint(self, resolution):
        pass


def make_trainer(tmp_path, *extra: str) -> ProGANTrainer:
    cfg = config.resolve(["progan", "--out", str(tmp_path / "run"), *TINY, *QUIET, *extra])
    ops.set_backend(cfg["backend"])
    torch.manual_seed(cfg["seed"] * 1000)
    return ProGANTrainer(cfg, torch.device("cpu"), 0, 1)


def take_step(trainer: ProGANTrainer, run=StubRun()) -> dict:
    trainer.before_step(run)
    metrics = trainer.train_step()
    trainer.step += 1
    return {k: float(v) for k, v in metrics.items()}


class Calls:
    """Records every call of a module: (args, output), detached."""

    def __init__(self, module: torch.nn.Module):
        self.calls = []
        self.handle = module.register_forward_hook(self._hook)

    def _hook(self, module, args, output):
        self.calls.append((tuple(a.detach().clone() if isinstance(a, torch.Tensor) else a for a in args),
                           output.detach().clone()))

    def remove(self):
        self.handle.remove()


def snapshot(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def box_fade(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """alpha * x + (1 - alpha) * (each 2x2 block replaced by its mean), written out."""
    n, c, h, w = x.shape
    means = x.reshape(n, c, h // 2, 2, w // 2, 2).mean(dim=(3, 5), keepdim=True)
    low = means.expand(n, c, h // 2, 2, w // 2, 2).reshape(n, c, h, w)
    return alpha * x + (1 - alpha) * low


# --- every network trains -----------------------------------------------------------------------

def test_short_run_changes_every_parameter_of_every_network(tmp_path):
    tr = make_trainer(tmp_path)
    before = {name: snapshot(net) for name, net in tr.nets.items()}
    while not tr.done():
        take_step(tr)
    assert tr.step == 12 and tr.phase.resolution == 8
    for name, net in tr.nets.items():
        for (pname, p), old in zip(net.named_parameters(), before[name]):
            assert not torch.equal(p, old), f"{name}.{pname} never changed"


# --- the WGAN-GP + drift step, recomputed -------------------------------------------------------

def _adam_copy(module, optimizer):
    opt = torch.optim.Adam(module.parameters())
    opt.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    return opt


@pytest.mark.parametrize("at_step", [1, 6])     # 4x4 stable; 8x8 fading in (alpha 0.5)
def test_critic_generator_and_ema_updates_follow_the_config(tmp_path, at_step):
    lam, eps, beta = 7.5, 0.01, 0.9   # not the defaults: a hard-coded 10 / 0.001 / 0.999 shows
    tr = make_trainer(tmp_path, "--dtype", "float64", "--gp-lambda", str(lam), "--drift", str(eps),
                      "--ema-beta", str(beta))
    for _ in range(at_step):
        take_step(tr)
    D0, G0, ema0 = copy.deepcopy(tr.D), copy.deepcopy(tr.G), snapshot(tr.G_ema)
    optD0, optG0 = _adam_copy(D0, tr.optimizers["D"]), _adam_copy(G0, tr.optimizers["G"])
    d_calls, g_calls = Calls(tr.D), Calls(tr.G)
    m = take_step(tr)
    d_calls.remove(), g_calls.remove()
    (real, alpha, steps), _ = d_calls.calls[0]
    (fake, _, _), _ = d_calls.calls[1]
    (x_hat, _, _), _ = d_calls.calls[2]
    assert len(d_calls.calls) == 4 and alpha == tr.schedule.at(tr.images_seen - 4).alpha

    # x_hat = e * real + (1 - e) * fake with one e per sample
    e = (x_hat - fake) / (real - fake)
    assert torch.allclose(e, e.flatten(1)[:, :1, None, None].expand_as(e), rtol=1e-7, atol=1e-7)

    # the critic's loss, recomputed on the pre-step copy of D
    rs, fs = D0(real, alpha, steps), D0(fake, alpha, steps)
    x_hat = x_hat.requires_grad_(True)
    (grad,) = torch.autograd.grad(D0(x_hat, alpha, steps).sum(), x_hat, create_graph=True)
    gp = (grad.flatten(1).norm(dim=1) - 1).square().mean()
    loss_d = fs.mean() - rs.mean() + lam * gp + eps * rs.square().mean()
    assert m["loss_D"] == pytest.approx(loss_d.item(), rel=1e-10)
    assert m["penalty/gp"] == pytest.approx(gp.item(), rel=1e-10)
    assert m["penalty/drift"] == pytest.approx(eps * rs.square().mean().item(), rel=1e-10)
    assert m["wasserstein"] == pytest.approx((rs.mean() - fs.mean()).item(), rel=1e-10, abs=1e-12)
    # D's new weights: one Adam step on the gradient of that loss
    optD0.zero_grad()
    loss_d.backward()
    optD0.step()
    for p_expected, p in zip(D0.parameters(), tr.D.parameters()):
        torch.testing.assert_close(p, p_expected, rtol=1e-9, atol=1e-12)

    # the generator's loss through the updated D, and its Adam step
    (z, _, _), _ = g_calls.calls[1]
    D1 = copy.deepcopy(tr.D)
    loss_g = -D1(G0(z, alpha, steps), alpha, steps).mean()
    assert m["loss_G"] == pytest.approx(loss_g.item(), rel=1e-10)
    optG0.zero_grad()
    loss_g.backward()
    optG0.step()
    for p_expected, p in zip(G0.parameters(), tr.G.parameters()):
        torch.testing.assert_close(p, p_expected, rtol=1e-9, atol=1e-12)

    # the EMA: beta * old + (1 - beta) * new G
    for old, new, ema in zip(ema0, tr.G.parameters(), tr.G_ema.parameters()):
        torch.testing.assert_close(ema, beta * old + (1 - beta) * new.detach(), rtol=1e-12, atol=1e-14)


# --- the reals D sees ---------------------------------------------------------------------------

def _record_raw(trainer) -> list[torch.Tensor]:
    raw, real_next = [], trainer.batches.next

    def next_(n):
        out = real_next(n)
        raw.append(out.clone())
        return out
    trainer.batches.next = next_
    return raw


def test_reals_are_faded_with_the_schedules_alpha(tmp_path):
    tr = make_trainer(tmp_path, "--dtype", "float64")
    raw = _record_raw(tr)
    calls = Calls(tr.D)
    alphas = []
    for _ in range(12):
        calls.calls.clear()
        expected_phase = tr.schedule.at(tr.images_seen)
        take_step(tr)
        (real, alpha, steps), _ = calls.calls[0]
        assert (alpha, steps) == (expected_phase.alpha, expected_phase.steps)
        torch.testing.assert_close(real, box_fade(raw[-1].double(), alpha), rtol=1e-12, atol=1e-12)
        alphas.append(alpha)
    assert alphas == [1.0] * 5 + [0.25, 0.5, 0.75] + [1.0] * 4


def test_mirror_flips_about_half_of_the_reals(tmp_path):
    tr = make_trainer(tmp_path, "--dtype", "float64", "--mirror")
    raw = _record_raw(tr)
    calls = Calls(tr.D)
    flipped = kept = 0
    for _ in range(12):
        calls.calls.clear()
        take_step(tr)
        (real, alpha, _), _ = calls.calls[0]
        for x, r in zip(real, raw[-1].double()):
            as_is, mirrored = box_fade(r[None], alpha)[0], box_fade(r.flip(2)[None], alpha)[0]
            assert torch.allclose(x, as_is) or torch.allclose(x, mirrored)
            if not torch.allclose(as_is, mirrored):
                flipped += bool(torch.allclose(x, mirrored))
                kept += bool(torch.allclose(x, as_is))
    assert flipped >= 8 and kept >= 8       # 48 images, each flipped with probability 1/2


# --- Adam resets --------------------------------------------------------------------------------

def official_lod(nimg: int, resolution_log2: int, training: float, transition: float) -> float:
    """train.py's TrainingSchedule lod (lod_initial_resolution 4), transcribed."""
    kimg = nimg / 1000.0
    phase_dur = training + transition
    phase_idx = int(np.floor(kimg / phase_dur))
    phase_kimg = kimg - phase_idx * phase_dur
    lod = resolution_log2 - 2 - phase_idx
    lod -= max(phase_kimg - training, 0.0) / transition
    return max(lod, 0.0)


@pytest.mark.parametrize("reset", [True, False])
def test_optimizer_state_reset_where_the_official_code_resets_it(tmp_path, reset):
    tr = make_trainer(tmp_path, "--reset-optimizer", str(reset).lower(), "--kimg", "0.064")
    previous_lod, resets = None, []
    while not tr.done():
        lod = official_lod(tr.images_seen, 3, 0.016, 0.016)
        official_reset = previous_lod is not None and (
            math.floor(lod) != math.floor(previous_lod) or math.ceil(lod) != math.ceil(previous_lod))
        tr.before_step(StubRun())
        empty = all(len(opt.state) == 0 for opt in tr.optimizers.values())
        if tr.step > 0:
            assert empty == (official_reset and reset), f"step {tr.step}, lod {lod}"
        resets.append(official_reset)
        previous_lod = lod
        tr.train_step()
        tr.step += 1
    # 4x4 -> fade 8x8 at step 5 (20 images), stabilise 8x8 at step 8 (32 images), none after
    assert [i for i, r in enumerate(resets) if r] == [5, 8]
    assert tr.resets == (2 if reset else 0)


# --- the schedule ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["paper", "official"])
def test_schedule_matches_the_official_training_schedule(name):
    cfg = config.preset("progan", True, name)
    fade, stable = cfg["fade_kimg"], cfg["stable_kimg"]
    assert (fade, stable) == ((800.0, 800.0) if name == "paper" else (600.0, 600.0))
    schedule = ProGANSchedule(64, int(fade * 1000), int(stable * 1000))
    phase_len = int((fade + stable) * 1000)
    counts = [0, 1, int(stable * 1000) - 1] + [int(stable * 1000) + k * phase_len + f
                                               for k in range(5) for f in (0, 1, phase_len // 4,
                                                                          phase_len // 2 - 1,
                                                                          phase_len // 2, phase_len - 1)]
    counts += [12_000_000, 15_000_000]
    for nimg in counts:
        lod = official_lod(nimg, 6, stable, fade)
        p = schedule.at(nimg)
        assert p.resolution == 2 ** (6 - math.floor(lod)), nimg
        assert p.alpha == pytest.approx(1.0 - (lod - math.floor(lod)), abs=1e-9), nimg
        assert p.fading == (lod != math.floor(lod))
    # a few by hand: 64x64 fades in from 4 phases on, then trains on at alpha 1
    start64 = int(stable * 1000) + 3 * phase_len
    assert (schedule.at(start64).resolution, schedule.at(start64).alpha) == (32, 1.0)
    assert (schedule.at(start64 + 1).resolution, schedule.at(start64 + 1).alpha) == (64, 1 / (fade * 1000))
    assert schedule.at(start64 + int(fade * 500)).alpha == 0.5
    assert schedule.total_images == start64 + phase_len
    assert schedule.at(schedule.total_images + 10**7) == schedule.at(schedule.total_images)


def test_presets_hold_their_sources_values():
    paper, official = config.preset("progan", False, "paper"), config.preset("progan", False, "official")
    assert paper["minibatch"] == {"4": 16, "8": 16, "16": 16, "32": 16, "64": 16, "128": 16,
                                  "256": 14, "512": 6, "1024": 3}
    assert (paper["mbstd_group"], paper["lr"], paper["betas"], paper["gp_lambda"], paper["drift"],
            paper["ema_beta"], paper["reset_optimizer"]) == (None, 1e-3, [0.0, 0.99], 10.0, 0.001, 0.999, True)
    # where the paper is silent: the Theano celeb-hq-1024x1024 config that produced its results
    assert (paper["kimg"], paper["mirror"], paper["lr_rampup_kimg"]) == (19000.0, True, 40.0)
    assert official["minibatch"] == {"4": 128, "8": 128, "16": 128, "32": 64, "64": 32, "128": 16,
                                     "256": 8, "512": 4, "1024": 4}
    assert (official["mbstd_group"], official["kimg"], official["mirror"], official["lr_dict"]) == \
        (4, 12000.0, True, {"1024": 0.0015})
    # the CPU default stays the reduced run
    cpu = config.preset("progan", False)
    assert (cpu["resolution"], cpu["fade_kimg"], cpu["fmap_base"], cpu["mbstd_group"]) == (32, 20.0, 256, 4)


def test_learning_rate_rampup_and_per_resolution_rates(tmp_path):
    """lr * exp(-5 (1 - n / 32)^2) for the first 32 images (the Theano misc.rampup), then lr;
    lr_dict's rate at 8x8 from the step that trains at 8x8."""
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"lr_dict": {"8": 0.002}}))
    tr = make_trainer(tmp_path, "--lr-rampup-kimg", "0.032", "--config", str(path))
    for _ in range(12):
        n = tr.images_seen
        tr.before_step(StubRun())
        base = 0.002 if tr.phase.resolution == 8 else 1e-3
        expected = base * (math.exp(-5 * (1 - n / 32) ** 2) if n < 32 else 1.0)
        for opt in tr.optimizers.values():
            assert opt.param_groups[0]["lr"] == pytest.approx(expected, rel=1e-12)
        tr.train_step()
        tr.step += 1


def test_training_goes_on_at_the_final_resolution_until_kimg(tmp_path):
    tr = make_trainer(tmp_path, "--kimg", "0.08")
    seen = []
    while not tr.done():
        take_step(tr)
        seen.append((tr.phase.resolution, tr.phase.alpha))
    assert tr.images_seen == 80 and len(seen) == 20
    assert seen[12:] == [(8, 1.0)] * 8           # 8 steps past the schedule's 48 images


def test_paper_preset_minibatch_and_whole_batch_stddev_reach_the_trainer(tmp_path):
    tr = make_trainer(tmp_path, "--preset", "paper", "--resolution", "8", "--fmap-base", "16",
                      "--fmap-max", "8", "--latent-dim", "8", "--batch-size", "6")
    assert tr.D.output.minibatch_std.group_size is None and tr.batch_size(8) == 6
    m = take_step(tr)
    assert tr.images_seen == 6 and math.isfinite(m["loss_D"])


# --- LSGAN ------------------------------------------------------------------------------------------

def test_multiplicative_noise_formula():
    x = torch.randn(3, 5, 2, 2, dtype=torch.float64)
    torch.manual_seed(1)
    y = progan.multiplicative_noise(x, 0.3)
    torch.manual_seed(1)
    e = torch.randn(3, 5, 1, 1, dtype=torch.float64)
    torch.testing.assert_close(y, x * (1 + 0.3 * math.sqrt(5) * e), rtol=1e-14, atol=0)
    assert progan.multiplicative_noise(x, 0.0) is x


def test_lsgan_losses_and_adaptive_noise(tmp_path):
    w, coef = 0.3, 0.5
    tr = make_trainer(tmp_path, "--dtype", "float64", "--loss", "lsgan", "--lsgan-fake-weight", str(w),
                      "--d-noise", str(coef))
    tr.real_average = 0.8                     # as if D had been winning: noise from the start
    tr.D.noise_strength = coef * 0.3 ** 2
    average = 0.8
    for _ in range(6):
        calls = Calls(tr.D)
        D0 = copy.deepcopy(tr.D).eval()      # eval mode: no noise
        strength = tr.D.noise_strength
        m = take_step(tr)
        calls.remove()
        (real, alpha, steps), r = calls.calls[0]
        (_, _, _), f = calls.calls[1]
        (_, _, _), g = calls.calls[2]
        assert m["loss_D"] == pytest.approx(float((r - 1).square().mean() + w * f.square().mean()), rel=1e-12)
        assert m["loss_G"] == pytest.approx(float((g - 1).square().mean()), rel=1e-12)
        assert m["noise/strength"] == strength
        # the noise was applied: D's training output differs from the same D without noise
        assert (strength > 0) == (not torch.allclose(r, D0(real, alpha, steps)))
        average = 0.9 * average + 0.1 * min(1.0, max(0.0, float(r.mean())))
        assert tr.real_average == pytest.approx(average, rel=1e-12)
        assert tr.D.noise_strength == pytest.approx(coef * max(0.0, average - 0.5) ** 2, rel=1e-12, abs=0)


# --- best.pt ----------------------------------------------------------------------------------------

def test_best_checkpoint_keeps_the_lowest_swd_at_the_final_resolution_with_alpha_one(tmp_path, monkeypatch):
    # scripted SWD per evaluation (every 8 images): the lowest come at 4x4 and while 8x8 fades in
    # (the first four evaluations), which must not count
    script = iter([0.1, 0.2, 5.0, 0.3, 4.0, 7.0, 6.0, 3.0, 4.5, 2.5, 9.0, 2.8])

    def fake_evaluate(self, metrics, n, seed, extractor):
        return {"swd": next(script)}

    monkeypatch.setattr(ProGANTrainer, "evaluate", fake_evaluate)
    run = tmp_path / "run"
    argv = ["progan", "--out", str(run), *TINY, "--progress", "false", "--tensorboard", "false",
            "--device", "cpu", "--kimg", "0.096", "--eval-every", "8", "--eval-metrics", "swd",
            "--best-metric", "swd"]
    assert main(argv) == 0
    rows = [json.loads(line) for line in (run / "eval.jsonl").read_text().splitlines()]
    assert len(rows) == 12
    eligible = [r for r in rows if r["resolution"] == 8 and r["alpha"] == 1.0]
    assert 0 < len(eligible) < len(rows)
    best = min(eligible, key=lambda r: r["results"]["swd"])
    assert best["results"]["swd"] == 2.5
    state = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    assert state["step"] == best["step"] and state["evaluation"]["best"] == 2.5
    assert [r["step"] for r in rows if r["best"]][-1] == best["step"]
