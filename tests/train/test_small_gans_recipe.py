"""The small GANs train the papers' maths, checked against an independent recomputation.

For gan, dcgan, lsgan, wgan and wgan-gp a trainer is built from the command line (with
non-default lr, betas, clip, lambda and critic_steps, so that a hard-coded constant cannot pass)
and runs two steps while forward pre-hooks record what its networks were fed: the latents given
to G and the batches given to D. A reference written here from the papers, starting from copies
of the initial networks, replays the same steps from those inputs:

* gan / dcgan (Goodfellow et al. 2014 §3, non-saturating):
  ``L_D = BCE(D(x), 1) + BCE(D(G(z)), 0)``, ``L_G = BCE(D(G(z')), 1) = E[softplus(-D(G(z')))]``,
  Adam(lr, betas) for both;
* lsgan (Mao et al. 2017 eq. 2 with the a = 0, b = c = 1 coding of their experiments):
  ``L_D = 1/2 E[(D(x) - 1)^2] + 1/2 E[(D(G(z)) - 0)^2]``, ``L_G = 1/2 E[(D(G(z')) - 1)^2]``;
* wgan (Arjovsky et al. 2017, Algorithm 1): ``critic_steps`` times
  ``L_D = E[D(G(z))] - E[D(x)]``, RMSprop(lr), then every critic weight clamped to
  [-clip, clip]; then ``L_G = -E[D(G(z'))]``;
* wgan-gp (Gulrajani et al. 2017, Algorithm 1): ``critic_steps`` times
  ``L_D = E[D(G(z))] - E[D(x)] + lambda E[(||grad D(x_hat)||_2 - 1)^2]`` with
  ``x_hat = e x + (1 - e) G(z)``, one e in [0, 1] per sample, Adam(lr, betas); then ``L_G``.

Every logged loss term must equal the reference's, and the trainer's weights after each step
must equal the reference's: this fails when the optimiser step is skipped, clipping or lambda is
dropped, LSGAN uses the BCE losses, or critic_steps is not honoured.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from pygan.train import config, trainer_class

# deliberately not the presets' values: the trainer must take them from the config
RECIPE = {
    "gan": ["--lr", "3e-4", "--betas", "0.4,0.98"],
    "dcgan": ["--lr", "3e-4", "--betas", "0.4,0.98"],
    "lsgan": ["--lr", "3e-4", "--betas", "0.4,0.98"],
    "wgan": ["--lr", "2e-4", "--clip", "0.02", "--critic-steps", "3"],
    "wgan-gp": ["--lr", "3e-4", "--betas", "0.1,0.95", "--gp-lambda", "3.0", "--critic-steps", "3"],
}
MODELS = list(RECIPE)
STEPS = 2


def _trainer(model, tmp_path, tiny_settings, *extra):
    TINY, QUIET = tiny_settings
    cfg = config.resolve([model, "--out", str(tmp_path / "run"), "--device", "cpu", *TINY[model],
                          *QUIET, *RECIPE[model], *extra])
    torch.manual_seed(0)
    return trainer_class(model)(cfg, torch.device("cpu"), 0, 1), cfg


class Recorder:
    """What each network was called with, in call order (forward pre-hooks)."""

    def __init__(self, trainer):
        self.g_in, self.d_in = [], []
        self.handles = [
            trainer.G.register_forward_pre_hook(lambda m, a: self.g_in.append(a[0].detach().clone())),
            trainer.D.register_forward_pre_hook(lambda m, a: self.d_in.append(a[0].detach().clone())),
        ]

    def clear(self):
        self.g_in.clear()
        self.d_in.clear()


def _optimizers(model, cfg, G, D):
    if model == "wgan":     # Arjovsky et al.: RMSprop, no momentum
        return torch.optim.RMSprop(G.parameters(), cfg["lr"]), torch.optim.RMSprop(D.parameters(), cfg["lr"])
    betas = tuple(cfg["betas"])
    return (torch.optim.Adam(G.parameters(), cfg["lr"], betas=betas),
            torch.optim.Adam(D.parameters(), cfg["lr"], betas=betas))


def _descend(loss, opt):
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def _segment_coefficient(x_hat, real, fake):
    """The per-sample e with x_hat = fake + e (real - fake), asserting x_hat lies on that line."""
    d = (real - fake).flatten(1)
    e = ((x_hat - fake).flatten(1) * d).sum(1) / d.square().sum(1)
    e = e.view(-1, *([1] * (real.dim() - 1)))
    torch.testing.assert_close(x_hat, fake + e * (real - fake), rtol=0, atol=1e-5,
                               msg="WGAN-GP: x_hat must be on the segment between paired real and fake")
    assert ((e >= -1e-6) & (e <= 1 + 1e-6)).all(), "WGAN-GP: interpolation coefficient outside [0, 1]"
    return e


def _reference_gan_step(model, G, D, opt_G, opt_D, rec):
    """One step of the paper recipe on the recorded inputs; returns the losses it computed."""
    assert len(rec.g_in) == 2 and len(rec.d_in) == 3, "one D update (real, fake), then one G update"
    real, (z, z_g) = rec.d_in[0], rec.g_in
    fake = G(z)
    s_real, s_fake = D(real), D(fake.detach())
    if model == "lsgan":
        a, b, c = 0.0, 1.0, 1.0
        loss_d = 0.5 * (s_real - b).square().mean() + 0.5 * (s_fake - a).square().mean()
    else:
        loss_d = (F.binary_cross_entropy_with_logits(s_real, torch.ones_like(s_real))
                  + F.binary_cross_entropy_with_logits(s_fake, torch.zeros_like(s_fake)))
    _descend(loss_d, opt_D)
    s_gen = D(G(z_g))
    if model == "lsgan":
        loss_g = 0.5 * (s_gen - c).square().mean()
    else:
        loss_g = F.binary_cross_entropy_with_logits(s_gen, torch.ones_like(s_gen))
    _descend(loss_g, opt_G)
    return {"loss_D": loss_d, "loss_G": loss_g}


def _reference_wgan_step(model, cfg, G, D, opt_G, opt_D, rec):
    k, gp_on = cfg["critic_steps"], model == "wgan-gp"
    per_critic = 3 if gp_on else 2          # D(real), D(fake) [, D(x_hat)]
    assert len(rec.g_in) == k + 1, f"critic_steps={k}: {k} fakes for the critic, 1 for G"
    assert len(rec.d_in) == k * per_critic + 1
    out = {}
    for i in range(k):
        real, z = rec.d_in[i * per_critic], rec.g_in[i]
        fake = G(z).detach()
        wdist = D(fake).mean() - D(real).mean()
        loss_d = wdist
        if gp_on:
            x_hat = rec.d_in[i * per_critic + 2]
            _segment_coefficient(x_hat, real, fake)
            x_hat = x_hat.clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
            gp = (grad.flatten(1).norm(dim=1) - 1).square().mean()
            loss_d = wdist + cfg["gp_lambda"] * gp
            out["penalty/gp"] = gp
        _descend(loss_d, opt_D)
        if not gp_on:
            with torch.no_grad():
                for p in D.parameters():
                    p.clamp_(-cfg["clip"], cfg["clip"])
        out.update(loss_D=loss_d, wasserstein=-wdist)
    out["loss_G"] = -D(G(rec.g_in[k])).mean()
    _descend(out["loss_G"], opt_G)
    return out


@pytest.mark.parametrize("model", MODELS)
def test_losses_and_updates_equal_the_papers_recipe(model, tmp_path, tiny_settings):
    t, cfg = _trainer(model, tmp_path, tiny_settings)
    G, D = copy.deepcopy(t.G), copy.deepcopy(t.D)
    opt_G, opt_D = _optimizers(model, cfg, G, D)
    assert type(t.optimizers["G"]) is type(opt_G) and type(t.optimizers["D"]) is type(opt_D)
    rec = Recorder(t)
    data = copy.deepcopy(t.batches)
    n = cfg["batch_size"]
    for step in range(STEPS):
        rec.clear()
        metrics = t.train_step()
        # the critic's real inputs are the data's next batches, in order
        reals = rec.d_in[0::3 if model == "wgan-gp" else 2][:cfg.get("critic_steps", 1)]
        for real in reals:
            torch.testing.assert_close(real, data.next(n), rtol=0, atol=0)
        if model in ("wgan", "wgan-gp"):
            ref = _reference_wgan_step(model, cfg, G, D, opt_G, opt_D, rec)
        else:
            ref = _reference_gan_step(model, G, D, opt_G, opt_D, rec)
        assert {k for k in metrics if not k.startswith("grad_norm/")} == set(ref)
        for key, value in ref.items():
            torch.testing.assert_close(torch.as_tensor(float(metrics[key])), value.detach(),
                                       rtol=1e-5, atol=1e-6, msg=lambda m: f"step {step} {key}: {m}")
        for name, mine, theirs in (("G", t.G, G), ("D", t.D, D)):
            for (pname, p), q in zip(mine.named_parameters(), theirs.parameters()):
                torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-7,
                                           msg=lambda m: f"step {step} {name}.{pname}: {m}")
    images = STEPS * n * cfg.get("critic_steps", 1)
    assert t.images_seen == images


@pytest.mark.parametrize("model", MODELS)
def test_every_parameter_changes(model, tmp_path, tiny_settings):
    """Both networks learn: after two steps no parameter tensor of G or D is left as it was.

    Except the bias of a Wasserstein critic's last layer: a constant added to every score
    cancels in E[D(G(z))] - E[D(x)] and in the penalty's input gradient, so its gradient is
    exactly zero in the critic's loss (it is checked to be zero here, not skipped silently)."""
    t, _ = _trainer(model, tmp_path, tiny_settings)
    exempt = set()
    if model in ("wgan", "wgan-gp"):
        last = [k for k, _ in t.D.named_parameters()][-1]
        assert last.endswith("bias") and t.D.get_parameter(last).numel() == 1
        exempt = {last}
    before = {name: {k: v.detach().clone() for k, v in net.named_parameters()}
              for name, net in t.nets.items()}
    for _ in range(STEPS):
        t.train_step()
    for name, net in t.nets.items():
        frozen = [k for k, v in net.named_parameters()
                  if torch.equal(v, before[name][k]) and not (name == "D" and k in exempt)]
        assert not frozen, f"{model}: {name} parameters unchanged after {STEPS} steps: {frozen}"
    for k in exempt:        # the critic loss's gradient for that bias is zero
        x, y = torch.randn(2, 4, *t.D.main[0].weight.shape[1:2], t.cfg["resolution"], t.cfg["resolution"])
        (grad,) = torch.autograd.grad(t.D(x).mean() - t.D(y).mean(), t.D.get_parameter(k))
        assert float(grad.abs().max()) < 1e-6


@pytest.mark.parametrize("model", ["wgan", "wgan-gp"])
def test_critic_steps_per_generator_step(model, tmp_path, tiny_settings):
    """critic_steps critic updates, each on a fresh real batch, per generator update."""
    t, cfg = _trainer(model, tmp_path, tiny_settings, "--critic-steps", "4")
    counts = {"G": 0, "D": 0}
    for name, opt in t.optimizers.items():
        opt.register_step_post_hook(lambda o, a, kw, name=name: counts.__setitem__(name, counts[name] + 1))
    for step in range(1, STEPS + 1):
        t.train_step()
        assert counts == {"G": step, "D": 4 * step}
    assert t.images_seen == STEPS * 4 * cfg["batch_size"]


def test_wgan_clips_after_every_critic_update(tmp_path, tiny_settings):
    """Every critic forward after the first update sees weights within [-clip, clip]."""
    t, cfg = _trainer("wgan", tmp_path, tiny_settings, "--critic-steps", "3")
    clip, seen = cfg["clip"], []
    t.optimizers["D"].register_step_post_hook(lambda *a: seen.append("update"))

    def check(module, args):
        if "update" in seen:
            worst = max(float(p.detach().abs().max()) for p in module.parameters())
            seen.append(worst)
    t.D.register_forward_pre_hook(check)
    assert max(float(p.detach().abs().max()) for p in t.D.parameters()) > clip   # N(0, 0.02) init exceeds it
    for _ in range(STEPS):
        t.train_step()
        assert max(float(p.detach().abs().max()) for p in t.D.parameters()) <= clip
    worst = [v for v in seen if v != "update"]
    assert len(worst) >= 2 * STEPS * 3 - 2 and max(worst) <= clip
