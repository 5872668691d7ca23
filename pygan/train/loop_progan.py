"""ProGAN (Karras et al. 2018): progressive growing with the WGAN-GP loss plus drift (or LSGAN).

Per step, at the schedule's resolution r and fade-in alpha (see :mod:`.schedule`; after the
schedule, training goes on at the final resolution with alpha 1 until ``--kimg``):

* real images are read at r from the multi-resolution cache (a box-filter pyramid, as the
  official ``dataset_tool.py`` makes), flipped left-right with probability 1/2 each with
  ``--mirror`` (the official ``mirror_augment``), and, while a block fades in, blended with their
  own 2x2-box-averaged-then-upsampled version by the same alpha (§2 and Figure 2 of the paper: during
  a transition the real images are interpolated between the two resolutions; the official
  ``process_reals``), so D never sees sharper reals than G can draw;
* ``--loss wgan-gp`` (default): critic E[D(G(z))] - E[D(x)] + lambda * GP + eps_drift * E[D(x)^2];
  generator -E[D(G(z))];
* ``--loss lsgan``: the Theano code's LSGAN, D: E[(D(x) - 1)^2] + w_fake * E[D(G(z))^2], G:
  E[(D(G(z)) - 1)^2] (its real/fake targets were 0/1, a relabelling D -> 1 - D of this form);
  after each D step a <- 0.9 a + 0.1 clip(mean D(x), 0, 1) and D's multiplicative noise
  strength becomes d_noise * max(0, a - 0.5)^2 (the paper's LSGAN appendix), used from the next step on;
* Adam(lr, betas, eps 1e-8) for both, its moments reset (``--reset-optimizer``) whenever a
  resolution starts fading in and when it starts stabilising, as the official train.py resets
  them when floor(lod) or ceil(lod) changes; the learning rate may depend on the resolution
  (``lr_dict``) and ramp up over the first ``lr_rampup_kimg`` thousand images (:func:`lr_rampup`);
  the grids come from an EMA of G's weights, ema <- beta ema + (1 - beta) G;
* the minibatch depends on the resolution (``minibatch``, or one ``batch_size``).

When training at a resolution ends, its EMA grid and a checkpoint (``res-XXXX.pt``) are kept.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F

from .. import losses
from ..data import get_dataset
from ..models import progan
from . import distributed
from .batches import Batches
from .runner import Trainer
from .schedule import ProGANSchedule


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, beta: float) -> None:
    """ema <- beta * ema + (1 - beta) * model, for parameters; buffers are copied."""
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1.0 - beta)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def fade_reals(real: torch.Tensor, alpha: float) -> torch.Tensor:
    """alpha * real + (1 - alpha) * up(box(real)): the real images' own fade-in, box = the mean
    of each 2x2 block, up = nearest-neighbour 2x (the official ``process_reals`` FadeLOD)."""
    if alpha >= 1.0:
        return real
    low = F.interpolate(F.avg_pool2d(real, 2), scale_factor=2, mode="nearest")
    return torch.lerp(low, real, alpha)


def mirror(real: torch.Tensor) -> torch.Tensor:
    """Each image flipped left-right with probability 1/2 (one U[0, 1) draw per image from
    torch's generator on ``real``'s device; flipped where it is < 0.5)."""
    flip = torch.rand(real.shape[0], device=real.device) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), real.flip(3), real)


def lr_rampup(images_seen: int, rampup_kimg: float) -> float:
    """exp(-5 (1 - t)^2) with t = images_seen / (1000 rampup_kimg) while t < 1, else 1 (the
    Theano code's ``misc.rampup``); 1 when ``rampup_kimg`` is 0."""
    if not rampup_kimg or images_seen >= rampup_kimg * 1000:
        return 1.0
    return math.exp(-5.0 * (1.0 - images_seen / (rampup_kimg * 1000)) ** 2)


def _at_least_float32(t: torch.Tensor) -> torch.Tensor:
    """Scores as float32 under bf16/fp16 autocast, float64 in a float64 run."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


#: The paper's LSGAN noise (its LSGAN appendix): running average beta, the level above which noise starts.
NOISE_BETA, NOISE_LIMIT = 0.9, 0.5


def noise_strength(average: float, coefficient: float) -> float:
    """coefficient * max(0, average - 0.5)^2 (0.2 in the paper)."""
    return coefficient * max(0.0, average - NOISE_LIMIT) ** 2


class ProGANTrainer(Trainer):
    unit = "img"

    def __init__(self, cfg, device, rank, world_size):
        super().__init__(cfg, device, rank, world_size)
        r, latent = cfg["resolution"], cfg["latent_dim"]
        self.schedule = ProGANSchedule(r, round(cfg["fade_kimg"] * 1000), round(cfg["stable_kimg"] * 1000))
        if cfg.get("kimg") is None:
            cfg["kimg"] = self.schedule.total_images / 1000
        self.cache = get_dataset(cfg["data"] or "emoji", r, cfg["channels"], multires=True,
                                 progress=False)
        channels = self.cache.at(4).channels
        args = dict(resolution=r, latent_dim=latent, img_channels=channels,
                    fmap_base=cfg["fmap_base"], fmap_max=cfg["fmap_max"])
        self.G = self.place(progan.Generator(**args))
        self.D = self.place(progan.Discriminator(**args, mbstd_group_size=cfg.get("mbstd_group", 4),
                                                 mbstd_averaging=cfg.get("mbstd_averaging", "all")))
        self.G_ema = copy.deepcopy(self.G).requires_grad_(False)
        self.nets = {"G": self.G, "D": self.D, "G_ema": self.G_ema}
        betas = tuple(float(b) for b in cfg["betas"])
        self.optimizers = {"G": torch.optim.Adam(self.G.parameters(), cfg["lr"], betas=betas, eps=1e-8),
                           "D": torch.optim.Adam(self.D.parameters(), cfg["lr"], betas=betas, eps=1e-8)}
        self.G_train = distributed.wrap(self.G, device)
        self.D_train = distributed.wrap(self.D, device)
        self.batches = Batches(self.cache.at(4), cfg["seed"], rank, world_size)
        self.fixed_z = torch.randn(cfg["grid_size"], latent,
                                   generator=torch.Generator().manual_seed(cfg["seed"])
                                   ).to(device, self.dtype)
        self.phase = self.schedule.at(0)
        self._data_resolution = None
        self.latent_dim = latent
        self.resets = 0                 # optimiser resets so far (phase changes)
        self.real_average = 0.0         # LSGAN: the running average a of D's output on reals

    def batch_size(self, resolution: int) -> int:
        if self.cfg.get("batch_size"):
            return self.cfg["batch_size"]
        return int(self.cfg["minibatch"][str(resolution)])

    def grid_name(self) -> str:
        p = self.phase
        return f"r{p.resolution:03d}-kimg{self.images_seen / 1000:07.2f}"

    def postfix(self) -> dict:
        return {"res": self.phase.resolution, "alpha": f"{self.phase.alpha:.2f}"}

    def before_step(self, run) -> None:
        phase = self.schedule.at(self.images_seen)
        if phase.steps != self.phase.steps and self.step > 0:
            # the previous resolution is done: keep its grid and a checkpoint for good
            run.save_grid(f"final-r{self.phase.resolution:03d}")
            run.save_resolution_checkpoint(self.phase.resolution)
        if (phase.steps, phase.fading) != (self.phase.steps, self.phase.fading) and self.step > 0 \
                and self.cfg.get("reset_optimizer", False):
            self.reset_optimizers()
        self.phase = phase
        lr = (self.cfg.get("lr_dict") or {}).get(str(phase.resolution), self.cfg["lr"])
        lr *= lr_rampup(self.images_seen, self.cfg.get("lr_rampup_kimg") or 0.0)
        for opt in self.optimizers.values():
            for group in opt.param_groups:
                group["lr"] = lr
        if self._data_resolution != phase.resolution:
            self.batches.set_dataset(self.cache.at(phase.resolution))
            self._data_resolution = phase.resolution

    def reset_optimizers(self) -> None:
        """Forget Adam's moments and step counts (the official ``reset_optimizer_state``)."""
        for opt in self.optimizers.values():
            opt.state.clear()
        self.resets += 1

    def extra_state(self) -> dict:
        return {"resets": self.resets, "real_average": self.real_average,
                "noise_strength": float(self.D.noise_strength)}

    def load_extra_state(self, state: dict) -> None:
        self.resets = int(state.get("resets", 0))
        self.real_average = float(state.get("real_average", 0.0))
        self.D.noise_strength = float(state.get("noise_strength", 0.0))

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        # resumed mid-run: the phase is where the run was, not 4x4 (no spurious phase change)
        self.phase = self.schedule.at(self.images_seen)

    def at_end(self, run) -> None:
        self.phase = self.schedule.at(self.images_seen)
        run.save_grid(f"final-r{self.phase.resolution:03d}")
        run.save_resolution_checkpoint(self.phase.resolution)

    def real_batch(self, n: int) -> torch.Tensor:
        """The next ``n`` reals as D sees them now: mirrored (``--mirror``), then faded by alpha."""
        real = self.to_device(self.batches.next(n))
        if self.cfg.get("mirror", False):
            real = mirror(real)
        return fade_reals(real, self.phase.alpha)

    def train_step(self) -> dict:
        cfg, p = self.cfg, self.phase
        n = self.per_rank(self.batch_size(p.resolution))
        real = self.real_batch(n)
        if cfg.get("loss", "wgan-gp") == "lsgan":
            return self._lsgan_step(real, n)
        alpha, steps = p.alpha, p.steps

        # critic
        z = self.latent(n, cfg["latent_dim"])
        with self.autocast():
            fake = self.G_train(z, alpha, steps)
            real_scores = self.D_train(real, alpha, steps)
            fake_scores = self.D_train(fake.detach(), alpha, steps)
            wdist = losses.wgan_critic_loss(real_scores, fake_scores)
            gp = losses.gradient_penalty(self.D_train, real, fake, alpha, steps,
                                         scaler=self.scaler if self.scaler.is_enabled() else None)
            drift = losses.drift_penalty(_at_least_float32(real_scores), cfg["drift"])
            loss_d = wdist + cfg["gp_lambda"] * gp + drift
        grad_d = self.update(loss_d, self.optimizers["D"], self.D)

        # generator
        z = self.latent(n, cfg["latent_dim"])
        with self.autocast():
            loss_g = losses.wgan_generator_loss(self.D_train(self.G_train(z, alpha, steps), alpha, steps))
        grad_g = self.update(loss_g, self.optimizers["G"], self.G)
        update_ema(self.G_ema, self.G, cfg["ema_beta"])

        self.images_seen += n * self.world_size
        return {"loss_D": loss_d.detach(), "loss_G": loss_g.detach(), "wasserstein": -wdist.detach(),
                "penalty/gp": gp.detach(), "penalty/drift": drift.detach(),
                "scores/real": real_scores.detach().float().mean(),
                "scores/real_sq": real_scores.detach().float().square().mean(),
                "grad_norm/D": grad_d, "grad_norm/G": grad_g, "alpha": alpha,
                "resolution": float(p.resolution)}

    def _lsgan_step(self, real: torch.Tensor, n: int) -> dict:
        """One LSGAN step (module docstring), then the update of D's noise strength."""
        cfg, p = self.cfg, self.phase
        alpha, steps = p.alpha, p.steps
        noise = float(self.D.noise_strength)
        z = self.latent(n, cfg["latent_dim"])
        with self.autocast():
            fake = self.G_train(z, alpha, steps)
            real_scores = _at_least_float32(self.D_train(real, alpha, steps))
            fake_scores = _at_least_float32(self.D_train(fake.detach(), alpha, steps))
            real_term = (real_scores - 1.0).square().mean()
            fake_term = fake_scores.square().mean()
            loss_d = real_term + cfg["lsgan_fake_weight"] * fake_term
        grad_d = self.update(loss_d, self.optimizers["D"], self.D)

        z = self.latent(n, cfg["latent_dim"])
        with self.autocast():
            loss_g = (_at_least_float32(self.D_train(self.G_train(z, alpha, steps), alpha, steps))
                      - 1.0).square().mean()
        grad_g = self.update(loss_g, self.optimizers["G"], self.G)
        update_ema(self.G_ema, self.G, cfg["ema_beta"])

        mean_real = real_scores.detach().mean()
        if self.world_size > 1:     # every rank keeps the same average and noise strength
            mean_real = mean_real.clone()
            torch.distributed.all_reduce(mean_real)
            mean_real /= self.world_size
        mean_real = float(mean_real)
        self.real_average = NOISE_BETA * self.real_average + (1 - NOISE_BETA) * min(1.0, max(0.0, mean_real))
        self.D.noise_strength = noise_strength(self.real_average, cfg["d_noise"])
        self.images_seen += n * self.world_size
        return {"loss_D": loss_d.detach(), "loss_G": loss_g.detach(), "lsgan/real": real_term.detach(),
                "lsgan/fake": fake_term.detach(), "scores/real": mean_real, "noise/strength": noise,
                "noise/real_average": self.real_average, "grad_norm/D": grad_d, "grad_norm/G": grad_g,
                "alpha": alpha, "resolution": float(p.resolution)}

    def _sampling_phase(self):
        return self.schedule.at(self.images_seen) if self.step == 0 else self.phase

    @torch.no_grad()
    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """The EMA generator at the current resolution and alpha."""
        p = self._sampling_phase()
        return self.G_ema(z, p.alpha, p.steps)

    def eval_real(self, n: int, seed: int) -> torch.Tensor:
        """Reals at the current resolution, faded by alpha as training shows them to D."""
        from ..metrics.evaluate import sample_real

        p = self._sampling_phase()
        data = self.cache.at(p.resolution)
        return fade_reals(sample_real(data, min(n, len(data)), seed), p.alpha)

    def eval_context(self) -> dict:
        p = self._sampling_phase()
        return {"resolution": p.resolution, "alpha": p.alpha}

    def competes_for_best(self) -> bool:
        p = self._sampling_phase()
        return p.resolution == self.cfg["resolution"] and p.alpha >= 1.0


Trainer = ProGANTrainer
