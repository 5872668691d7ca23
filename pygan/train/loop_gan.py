"""GAN (MLP, Goodfellow et al. 2014), DCGAN (Radford et al. 2016) and LSGAN (Mao et al. 2017).

One step: a discriminator update on a real and a fake batch, then a generator update on a fresh
fake batch. ``gan`` and ``dcgan`` use the non-saturating loss (BCE from logits); ``lsgan`` is the
DCGAN networks with the least-squares losses (a=0, b=c=1). All three use Adam(2e-4, (0.5, 0.999)).
"""

from __future__ import annotations

import torch

from .. import losses
from ..models import dcgan, gan
from . import distributed
from .batches import Batches
from .runner import Trainer, open_data


class GANTrainer(Trainer):
    def __init__(self, cfg, device, rank, world_size):
        super().__init__(cfg, device, rank, world_size)
        data = open_data(cfg, "mnist")
        c = data[0][0].shape[0]
        r, latent = cfg["resolution"], cfg["latent_dim"]
        if cfg["model"] == "gan":
            hidden = [max(1, int(w * cfg["width"])) for w in (256, 512, 1024)]
            self.G = gan.Generator(latent, (c, r, r), hidden=tuple(hidden))
            self.D = gan.Discriminator((c, r, r), hidden=tuple(reversed(hidden)))
        else:
            self.G = dcgan.Generator(r, latent, c, cfg["base_channels"])
            self.D = dcgan.Discriminator(r, c, cfg["base_channels"])
        self.G, self.D = self.place(self.G), self.place(self.D)
        self.nets = {"G": self.G, "D": self.D}
        betas = tuple(float(b) for b in cfg["betas"])
        self.optimizers = {"G": torch.optim.Adam(self.G.parameters(), cfg["lr"], betas=betas),
                           "D": torch.optim.Adam(self.D.parameters(), cfg["lr"], betas=betas)}
        self.G_train, self.D_train = distributed.wrap(self.G, device), distributed.wrap(self.D, device)
        self.batches = Batches(data, cfg["seed"], rank, world_size)
        self.eval_data, self.latent_dim = data, latent
        self.fixed_z = torch.randn(cfg["grid_size"], latent,
                                   generator=torch.Generator().manual_seed(cfg["seed"])).to(device)
        if cfg["model"] == "lsgan":
            self.d_loss, self.g_loss = "lsgan_discriminator_loss", "lsgan_generator_loss"
        else:
            self.d_loss, self.g_loss = "bce_discriminator_loss", "nonsaturating_generator_loss"

    def train_step(self) -> dict:
        n = self.per_rank(self.cfg["batch_size"])
        latent = self.cfg["latent_dim"]
        real = self.to_device(self.batches.next(n))
        d_loss, g_loss = getattr(losses, self.d_loss), getattr(losses, self.g_loss)
        with self.autocast():
            fake = self.G_train(self.latent(n, latent))
            loss_d = d_loss(self.D_train(real).float(), self.D_train(fake.detach()).float())
        grad_d = self.update(loss_d, self.optimizers["D"], self.D)
        with self.autocast():
            loss_g = g_loss(self.D_train(self.G_train(self.latent(n, latent))).float())
        grad_g = self.update(loss_g, self.optimizers["G"], self.G)
        self.images_seen += n * self.world_size
        return {"loss_D": loss_d.detach(), "loss_G": loss_g.detach(),
                "grad_norm/D": grad_d, "grad_norm/G": grad_g}


Trainer = GANTrainer
