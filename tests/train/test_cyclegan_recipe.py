"""CycleGAN trains as the authors' code does (models/cycle_gan_model.py, data/base_dataset.py,
models/networks.py): each logged loss term equals an independent recomputation from the config
and the pre-step networks; every network changes; the learning rate is constant and then decays
linearly over epochs of the larger domain; training images are random crops of the r*286/256
load, mirrored about half the time (never with --no-flip); the discriminators see the history
pool; best.pt keeps the best psnr_AtoB.

The runs are tiny (24x24, the smallest size the 70x70 PatchGAN accepts; 2-4 filters) and in
float64, so recomputations agree to ~1e-15 and the assertions use 1e-10."""

import copy
import json

import numpy as np
import pytest
import torch
from PIL import Image

from pygan import ops
from pygan.data.domains import default_load_size, random_crop_flip
from pygan.train import config, main, trainer_class
from pygan.train.loop_cyclegan import lr_factor

TINY = ["--resolution", "24", "--ngf", "2", "--ndf", "2", "--num-blocks", "1", "--batch-size", "1",
        "--progress", "false", "--tensorboard", "false", "--eval-every", "0"]


def _image(path, seed, size=40):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


@pytest.fixture
def two_domains(tmp_path):
    """trainA with 3 images, trainB with 5: an epoch is 5 steps at batch 1."""
    root = tmp_path / "data"
    for i in range(3):
        _image(root / "trainA" / f"{i}.png", i)
    for i in range(5):
        _image(root / "trainB" / f"{i}.png", 100 + i)
    return root


def make_trainer(tmp_path, *args, dtype="float64", backend="reference"):
    cfg = config.resolve(["cyclegan", "--device", "cpu", "--out", str(tmp_path / "run"), "--dtype", dtype,
                          *TINY, *args])
    torch.manual_seed(0)
    with ops.use_backend(backend):
        return trainer_class("cyclegan")(cfg, torch.device("cpu"), 0, 1)


def mse(scores, target):
    return ((scores - target) ** 2).mean()


def l1(x, y):
    return (x - y).abs().mean()


def expected_losses(nets, step, cfg):
    """The authors' backward_G / backward_D_basic, written out again from the pre-step networks
    (their G_A, G_B, D_A, D_B are our G_AB, G_BA, D_B, D_A)."""
    G_AB, G_BA, D_A, D_B = nets["G_AB"], nets["G_BA"], nets["D_A"], nets["D_B"]
    a, b = step["a"], step["b"]
    lam_a = lam_b = cfg["lambda_cyc"]
    lam_idt = cfg["lambda_id"]
    fake_b, fake_a = G_AB(a), G_BA(b)
    out = {"G/adv_AB": mse(D_B(fake_b), 1.0), "G/adv_BA": mse(D_A(fake_a), 1.0),
           "G/cycle_A": l1(G_BA(fake_b), a), "G/cycle_B": l1(G_AB(fake_a), b),
           "G/identity_A": l1(G_BA(a), a), "G/identity_B": l1(G_AB(b), b)}
    out["loss_G"] = (out["G/adv_AB"] + out["G/adv_BA"] + lam_a * out["G/cycle_A"] + lam_b * out["G/cycle_B"]
                     + lam_b * lam_idt * out["G/identity_B"] + lam_a * lam_idt * out["G/identity_A"])
    out["D/B"] = (mse(D_B(b), 1.0) + mse(D_B(step["pooled_b"]), 0.0)) * 0.5
    out["D/A"] = (mse(D_A(a), 1.0) + mse(D_A(step["pooled_a"]), 0.0)) * 0.5
    out["loss_D"] = out["D/A"] + out["D/B"]
    return out, fake_a.detach(), fake_b.detach()


def test_logged_losses_equal_the_official_objective_and_every_network_changes(tmp_path, two_domains):
    # non-default weights, so that a loop ignoring the config (or halving a term) cannot agree
    T = make_trainer(tmp_path, "--data", str(two_domains), "--lambda-cyc", "7", "--lambda-id", "0.3",
                     "--pool-size", "2")
    earlier_b = []
    from_history = 0
    for k in range(6):
        before = {name: copy.deepcopy(net) for name, net in T.nets.items()}
        metrics = T.train_step()
        with torch.no_grad():
            want, fake_a, fake_b = expected_losses(before, T.last_step, T.cfg)
        for key, value in want.items():
            assert float(metrics[key]) == pytest.approx(float(value), rel=1e-10, abs=1e-14), key
        # every term carries weight: none is identically zero
        assert all(float(metrics[key]) > 1e-4 for key in want), metrics
        # every network moved, every weight tensor of it
        for name, net in T.nets.items():
            old = dict(before[name].named_parameters())
            for pname, p in net.named_parameters():
                if pname.endswith("weight"):
                    assert not torch.equal(p, old[pname]), f"{name}.{pname} did not change at step {k + 1}"
        # the pool: the first 2 fakes go straight through, later ones are the new fake or an old one
        pooled = T.last_step["pooled_b"]
        if k < 2:
            assert torch.equal(pooled, fake_b)
        elif not torch.allclose(pooled, fake_b, rtol=0, atol=1e-12):
            assert any(torch.allclose(pooled, e, rtol=0, atol=1e-12) for e in earlier_b)
            from_history += 1
        earlier_b.append(fake_b)
    assert from_history >= 1        # 4 fair coin flips after the pool filled: 1/16 chance of none


def test_identity_term_off_when_lambda_id_is_zero(tmp_path, two_domains):
    T = make_trainer(tmp_path, "--data", str(two_domains), "--lambda-id", "0")
    before = {name: copy.deepcopy(net) for name, net in T.nets.items()}
    metrics = T.train_step()
    with torch.no_grad():
        want, _, _ = expected_losses(before, T.last_step, T.cfg)
    assert float(metrics["G/identity_A"]) == 0.0 == float(metrics["G/identity_B"])
    assert float(metrics["loss_G"]) == pytest.approx(float(want["loss_G"]), rel=1e-10)


# --- learning rate: epochs of the larger domain ---------------------------------------------------

def official_factor(epoch, n_epochs, n_decay):
    """networks.get_scheduler's lambda_rule with epoch_count = 1, stepped after every epoch."""
    return 1.0 - max(0, epoch + 1 - n_epochs) / float(n_decay + 1)


@pytest.mark.parametrize("policy", ["epoch", "iteration"])
def test_learning_rate_is_constant_then_decays_linearly_over_epochs(tmp_path, two_domains, policy):
    T = make_trainer(tmp_path, "--data", str(two_domains), "--n-epochs", "2", "--n-epochs-decay", "3",
                     "--lr", "0.001", "--lr-decay", policy, "--ngf", "1", "--ndf", "1")
    assert T.steps_per_epoch == 5 and T.total() == 25          # max(3, 5) images, 2 + 3 epochs
    seen = []
    while not T.done():
        seen.append([o.param_groups[0]["lr"] for o in T.optimizers.values()])
        T.train_step()
        T.step += 1
    assert T.step == 25
    for s, (lr_g, lr_d) in enumerate(seen):
        if policy == "epoch":
            want = 0.001 * official_factor(s // 5, 2, 3)
        else:   # the paper: constant for 10 steps, then linearly to 0 at step 25
            want = 0.001 * (1.0 if s < 10 else (25 - s) / 15)
        assert lr_g == pytest.approx(want, rel=1e-12) and lr_d == pytest.approx(want, rel=1e-12), s
    assert seen[9][0] == 0.001 and seen[-1][0] < seen[11][0] < 0.001        # it did decay
    if policy == "epoch":
        assert seen[-1][0] == pytest.approx(0.001 / 4)      # 1/(n_decay + 1), never 0
    else:
        assert T.optimizers["G"].param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-15)


def test_lr_factor_matches_the_official_rule_at_the_paper_length():
    factors = [lr_factor(e * 7, 7, 100, 100, "epoch") for e in range(200)]
    assert factors[:100] == [1.0] * 100
    assert factors[100] == pytest.approx(100 / 101) and factors[199] == pytest.approx(1 / 101)
    assert all(x > y for x, y in zip(factors[99:], factors[100:]))


# --- augmentation --------------------------------------------------------------------------------

def test_random_crop_flip_windows_offsets_and_flips():
    L, r = 9, 6
    images = torch.arange(5 * 3 * L * L, dtype=torch.float64).view(5, 3, L, L)
    g = torch.Generator().manual_seed(0)
    out, draws = random_crop_flip(images, r, True, g)
    assert out.shape == (5, 3, r, r)
    for i in range(5):
        y, x = int(draws["y"][i]), int(draws["x"][i])
        window = images[i, :, y:y + r, x:x + r]
        assert torch.equal(out[i], window.flip(-1) if draws["flip"][i] else window)
    flips, offsets = [], []
    for _ in range(100):
        _, d = random_crop_flip(images, r, True, g)
        flips += d["flip"].tolist()
        offsets += d["y"].tolist() + d["x"].tolist()
    assert 0.4 < np.mean(flips) < 0.6                   # 500 fair coin flips: 5 sigma is +-0.11
    assert set(offsets) == set(range(L - r + 1))        # every offset 0..L-r, nothing outside
    _, d = random_crop_flip(images, r, False, g)
    assert not d["flip"].any()
    with pytest.raises(ValueError, match="crop_size 10 exceeds the 9x9"):
        random_crop_flip(images, 10, True, g)


@pytest.mark.parametrize("flip", [True, False])
def test_training_batches_are_crops_of_the_load_size_mirrored_half_the_time(tmp_path, flip):
    root = tmp_path / "data"
    for i in range(2):      # every image of a domain the same, so the source of each crop is known
        _image(root / "trainA" / f"{i}.png", 7)
        _image(root / "trainB" / f"{i}.png", 8)
    T = make_trainer(tmp_path, "--data", str(root), *([] if flip else ["--no-flip"]), "--ngf", "1",
                     "--ndf", "1")
    load = default_load_size(24)
    assert load == 27 and T.train_domains.a[0][0].shape == (3, 27, 27)
    source = T.train_domains.a[0][0].double()
    flips = []
    for _ in range(40):
        T.train_step()
        a, draws = T.last_step["a"][0], T.last_step["draws_a"]
        y, x, f = int(draws["y"][0]), int(draws["x"][0]), bool(draws["flip"][0])
        window = source[:, y:y + 24, x:x + 24]
        assert a.shape == (3, 24, 24)
        assert torch.equal(a, window.flip(-1) if f else window)
        flips.append(f)
    if flip:
        assert 10 <= sum(flips) <= 30           # 40 fair flips: 3.2 sigma
    else:
        assert not any(flips)


def test_official_jitter_sizes():
    assert default_load_size(256) == 286 and default_load_size(128) == 143 and default_load_size(32) == 36
    cfg = config.resolve(["cyclegan", "--device", "cpu", "--preset", "official"])
    assert (cfg["resolution"], cfg["preprocess"], cfg["flip"], cfg["load_size"]) == (256, "resize_and_crop",
                                                                                     True, None)


# --- best.pt --------------------------------------------------------------------------------------

def test_best_checkpoint_keeps_the_highest_psnr_AtoB(tmp_path):
    run = tmp_path / "run"
    args = ["cyclegan", "--device", "cpu", "--out", str(run), "--resolution", "24", "--ngf", "4",
            "--ndf", "4", "--num-blocks", "1", "--batch-size", "1", "--max-steps", "8",
            "--eval-every", "1", "--eval-n", "16", "--progress", "false", "--tensorboard", "false",
            "--lr", "0.002"]
    assert main(args) == 0
    rows = [json.loads(line) for line in (run / "eval.jsonl").read_text().splitlines()]
    psnr = [r["results"]["psnr_AtoB"] for r in rows]
    assert len(rows) == 8 and len(set(psnr)) > 1          # the evaluations differ
    best_row = max(rows, key=lambda r: r["results"]["psnr_AtoB"])
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    assert best["step"] == best_row["step"]
    assert best["evaluation"]["best"] == pytest.approx(max(psnr))
    assert [r["step"] for r in rows if r["best"]][-1] == best_row["step"]


def test_resume_continues_the_same_crops_flips_and_pool(tmp_path, two_domains):
    """Stopping after 3 steps and resuming to 6 ends with the weights of an uninterrupted 6-step
    run: the augmentation generator, both data orders and the pools travel in the checkpoint."""
    base = ["cyclegan", "--device", "cpu", "--data", str(two_domains), *TINY, "--pool-size", "2",
            "--deterministic", "true", "--checkpoint-every", "100", "--sample-every", "100"]
    assert main([*base, "--out", str(tmp_path / "straight"), "--max-steps", "6"]) == 0
    assert main([*base, "--out", str(tmp_path / "split"), "--max-steps", "3"]) == 0
    assert main([*base, "--out", str(tmp_path / "split"), "--max-steps", "6", "--resume",
                 str(tmp_path / "split")]) == 0
    from pygan.train import checkpoint

    a = torch.load(checkpoint.latest(str(tmp_path / "straight")), weights_only=True)
    b = torch.load(checkpoint.latest(str(tmp_path / "split")), weights_only=True)
    assert a["step"] == b["step"] == 6
    for net, sd in a["nets"].items():
        for k, v in sd.items():
            assert torch.equal(v, b["nets"][net][k]), f"{net}.{k}"
