"""ProGAN (Karras et al. 2018): progressive growing with the WGAN-GP loss plus drift.

Per step, at the schedule's resolution r and fade-in alpha (see :mod:`.schedule`):

* real images are read at r from the multi-resolution cache and, while a block fades in, blended
  with their own 2x-downsampled-then-upsampled version by the same alpha (App. A.1: "we also fade
  in the real images"), so D never sees sharper reals than G can draw;
* critic: E[D(G(z))] - E[D(x)] + lambda * GP + eps_drift * E[D(x)^2];
* generator: -E[D(G(z))];
* Adam(lr 1e-3, betas (0, 0.99)) for both; the grids come from an EMA of G's weights (beta 0.999);
* the minibatch depends on the resolution (``minibatch``, or one ``batch_size``).

When training at a resolution ends, its EMA grid and a checkpoint (``res-XXXX.pt``) are kept.
"""

from __future__ import annotations

import copy

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
    """lerp(upsample(avgpool(real)), real, alpha): the real images' own fade-in."""
    if alpha >= 1.0:
        return real
    low = F.interpolate(F.avg_pool2d(real, 2), scale_factor=2, mode="nearest")
    return torch.lerp(low, real, alpha)


class ProGANTrainer(Trainer):
    unit = "img"

    def __init__(self, cfg, device, rank, world_size):
        super().__init__(cfg, device, rank, world_size)
        r, latent = cfg["resolution"], cfg["latent_dim"]
        self.schedule = ProGANSchedule(r, int(cfg["fade_kimg"] * 1000), int(cfg["stable_kimg"] * 1000))
        if cfg.get("kimg") is None:
            cfg["kimg"] = self.schedule.total_images / 1000
        self.cache = get_dataset(cfg["data"] or "emoji", r, cfg["channels"], multires=True,
                                 progress=False)
        channels = self.cache.at(4).channels
        args = dict(resolution=r, latent_dim=latent, img_channels=channels,
                    fmap_base=cfg["fmap_base"], fmap_max=cfg["fmap_max"])
        self.G = self.place(progan.Generator(**args))
        self.D = self.place(progan.Discriminator(**args))
        self.G_ema = copy.deepcopy(self.G).requires_grad_(False)
        self.nets = {"G": self.G, "D": self.D, "G_ema": self.G_ema}
        betas = tuple(float(b) for b in cfg["betas"])
        self.optimizers = {"G": torch.optim.Adam(self.G.parameters(), cfg["lr"], betas=betas),
                           "D": torch.optim.Adam(self.D.parameters(), cfg["lr"], betas=betas)}
        self.G_train = distributed.wrap(self.G, device)
        self.D_train = distributed.wrap(self.D, device)
        self.batches = Batches(self.cache.at(4), cfg["seed"], rank, world_size)
        self.fixed_z = torch.randn(cfg["grid_size"], latent,
                                   generator=torch.Generator().manual_seed(cfg["seed"])).to(device)
        self.phase = self.schedule.at(0)
        self._data_resolution = None
        self.latent_dim = latent

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
        self.phase = phase
        if self._data_resolution != phase.resolution:
            self.batches.set_dataset(self.cache.at(phase.resolution))
            self._data_resolution = phase.resolution

    def at_end(self, run) -> None:
        self.phase = self.schedule.at(self.images_seen)
        run.save_grid(f"final-r{self.phase.resolution:03d}")
        run.save_resolution_checkpoint(self.phase.resolution)

    def train_step(self) -> dict:
        cfg, p = self.cfg, self.phase
        n = self.per_rank(self.batch_size(p.resolution))
        real = fade_reals(self.to_device(self.batches.next(n)), p.alpha)
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
            drift = losses.drift_penalty(real_scores.float(), cfg["drift"])
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
                "grad_norm/D": grad_d, "grad_norm/G": grad_g, "alpha": alpha,
                "resolution": float(p.resolution)}

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
