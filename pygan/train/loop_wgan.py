"""WGAN (Arjovsky et al. 2017, Algorithm 1) and WGAN-GP (Gulrajani et al. 2017, Algorithm 1).

One step = ``critic_steps`` (5) critic updates, each on a fresh real batch, then one generator
update. WGAN: RMSprop(5e-5), critic weights clipped to [-0.01, 0.01] after each critic update.
WGAN-GP: Adam(1e-4, (0, 0.9)), critic loss plus lambda (10) times the gradient penalty, no batch
norm in the critic (layer norm instead). The DCGAN generator and :class:`pygan.models.wgan.Critic`.
"""

from __future__ import annotations

import torch

from .. import losses
from ..models import dcgan, wgan
from . import distributed
from .batches import Batches
from .runner import Trainer, open_data


class WGANTrainer(Trainer):
    def __init__(self, cfg, device, rank, world_size):
        super().__init__(cfg, device, rank, world_size)
        self.gp = cfg["model"] == "wgan-gp"
        data = open_data(cfg, "mnist")
        c = data[0][0].shape[0]
        r, latent = cfg["resolution"], cfg["latent_dim"]
        self.G = self.place(dcgan.Generator(r, latent, c, cfg["base_channels"]))
        self.D = self.place(wgan.Critic(r, c, cfg["base_channels"], cfg["critic_norm"]))
        self.nets = {"G": self.G, "D": self.D}
        if self.gp:
            betas = tuple(float(b) for b in cfg["betas"])
            make = lambda params: torch.optim.Adam(params, cfg["lr"], betas=betas)  # noqa: E731
        else:
            make = lambda params: torch.optim.RMSprop(params, cfg["lr"])  # noqa: E731
        self.optimizers = {"G": make(self.G.parameters()), "D": make(self.D.parameters())}
        self.G_train, self.D_train = distributed.wrap(self.G, device), distributed.wrap(self.D, device)
        self.batches = Batches(data, cfg["seed"], rank, world_size)
        self.eval_data, self.latent_dim = data, latent
        self.fixed_z = torch.randn(cfg["grid_size"], latent,
                                   generator=torch.Generator().manual_seed(cfg["seed"])).to(device)

    def train_step(self) -> dict:
        cfg = self.cfg
        n = self.per_rank(cfg["batch_size"])
        metrics = {}
        for _ in range(cfg["critic_steps"]):
            real = self.to_device(self.batches.next(n))
            with self.autocast():
                fake = self.G_train(self.latent(n, cfg["latent_dim"])).detach()
                wdist = losses.wgan_critic_loss(self.D_train(real).float(), self.D_train(fake).float())
                loss_d = wdist
                if self.gp:
                    gp = losses.gradient_penalty(self.D_train, real, fake,
                                                 scaler=self.scaler if self.scaler.is_enabled() else None)
                    loss_d = wdist + cfg["gp_lambda"] * gp
                    metrics["penalty/gp"] = gp.detach()
            metrics["grad_norm/D"] = self.update(loss_d, self.optimizers["D"], self.D)
            if not self.gp:
                losses.clip_weights_(self.D, cfg["clip"])
            self.images_seen += n * self.world_size
        with self.autocast():
            loss_g = losses.wgan_generator_loss(self.D_train(self.G_train(self.latent(n, cfg["latent_dim"]))).float())
        metrics["grad_norm/G"] = self.update(loss_g, self.optimizers["G"], self.G)
        metrics.update({"loss_D": loss_d.detach(), "loss_G": loss_g.detach(), "wasserstein": -wdist.detach()})
        return metrics


Trainer = WGANTrainer
