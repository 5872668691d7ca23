"""CycleGAN (Zhu et al. 2017, §3-4 and Appendix 7.1).

Two generators G_AB: A -> B and G_BA: B -> A, two PatchGAN discriminators D_A, D_B. One step on
one image (batch) of each domain:

* generators (one Adam over both): least-squares adversarial losses
  + lambda_cyc * (|G_BA(G_AB(a)) - a|_1 + |G_AB(G_BA(b)) - b|_1)
  + lambda_id * lambda_cyc * (|G_BA(a) - a|_1 + |G_AB(b) - b|_1);
* discriminators (one Adam over both): least-squares loss on real images and on fakes drawn from
  a history pool of 50 generated images, halved (the authors' "divide by 2").

Adam(2e-4, (0.5, 0.999)); the learning rate stays constant for the first ``decay_start`` fraction
of the run and then falls linearly to zero at its end (the paper: 100 + 100 epochs).
"""

from __future__ import annotations

import itertools
import os

import torch

from .. import losses
from ..data import UnpairedDomains, get_dataset
from ..models import cyclegan
from . import distributed
from .batches import Batches
from .runner import Trainer


def load_domains(cfg: dict) -> UnpairedDomains:
    """A and B from --data/--data-b: the bundled skin tones, a folder of two subfolders, or two
    folders."""
    r, c = cfg["resolution"], cfg["channels"]
    if cfg.get("data_b"):
        if not cfg.get("data"):
            raise ValueError("--data-b needs --data (domain A) as well")
        a, b = get_dataset(cfg["data"], r, c), get_dataset(cfg["data_b"], r, c)
        return UnpairedDomains(a, b, None, (os.path.basename(cfg["data"]), os.path.basename(cfg["data_b"])))
    name = cfg.get("data") or "emoji-skin-tones"
    domains = get_dataset(name, r, c, domains=name.lower() != "emoji-skin-tones")
    if not isinstance(domains, UnpairedDomains):
        raise ValueError(f"--data {name!r} is one domain: give --data-b for domain B, or a folder "
                         "with two image subfolders")
    return domains


def linear_decay(total_steps: int, decay_start: float):
    """LambdaLR factor: 1 until ``decay_start * total_steps``, then linearly down to 0 at the end."""
    start = int(total_steps * decay_start)

    def factor(step: int) -> float:
        if step < start:
            return 1.0
        return max(0.0, (total_steps - step) / max(1, total_steps - start))
    return factor


class CycleGANTrainer(Trainer):
    def __init__(self, cfg, device, rank, world_size):
        super().__init__(cfg, device, rank, world_size)
        if cfg.get("max_steps") is None:
            raise ValueError("cyclegan needs --max-steps (the learning-rate decay ends there)")
        domains = load_domains(cfg)
        c = domains.a[0][0].shape[0]
        nf, blocks = cfg["base_channels"], cfg["num_blocks"]
        self.G_AB = self.place(cyclegan.ResnetGenerator(c, c, nf, blocks))
        self.G_BA = self.place(cyclegan.ResnetGenerator(c, c, nf, blocks))
        self.D_A = self.place(cyclegan.PatchDiscriminator(c, nf))
        self.D_B = self.place(cyclegan.PatchDiscriminator(c, nf))
        self.nets = {"G_AB": self.G_AB, "G_BA": self.G_BA, "D_A": self.D_A, "D_B": self.D_B}
        self.train_nets = {k: distributed.wrap(m, device) for k, m in self.nets.items()}
        betas = tuple(float(b) for b in cfg["betas"])
        self.optimizers = {
            "G": torch.optim.Adam(itertools.chain(self.G_AB.parameters(), self.G_BA.parameters()),
                                  cfg["lr"], betas=betas),
            "D": torch.optim.Adam(itertools.chain(self.D_A.parameters(), self.D_B.parameters()),
                                  cfg["lr"], betas=betas)}
        decay = linear_decay(cfg["max_steps"], cfg["decay_start"])
        self.schedulers = {k: torch.optim.lr_scheduler.LambdaLR(o, decay) for k, o in self.optimizers.items()}
        self.batches = Batches(domains.a, cfg["seed"], rank, world_size)
        self.batches_b = Batches(domains.b, cfg["seed"] + 1, rank, world_size)
        self.pool_rng = torch.Generator().manual_seed(cfg["seed"] + 2)
        self.pool_a = cyclegan.ImagePool(cfg["pool_size"], self.pool_rng)   # fakes of A
        self.pool_b = cyclegan.ImagePool(cfg["pool_size"], self.pool_rng)   # fakes of B
        k = max(1, min(cfg["grid_size"] // 2, len(domains.a), len(domains.b)))
        self.fixed_z = torch.cat([torch.stack([domains.a[i][0] for i in range(k)]),
                                  torch.stack([domains.b[i][0] for i in range(k)])]).to(device)
        self.names = domains.domain_names
        self.domains = domains
        self._parameters_G = torch.nn.ModuleList([self.G_AB, self.G_BA])
        self._parameters_D = torch.nn.ModuleList([self.D_A, self.D_B])

    def train_step(self) -> dict:
        cfg, t = self.cfg, self.train_nets
        n = self.per_rank(cfg["batch_size"])
        a = self.to_device(self.batches.next(n))
        b = self.to_device(self.batches_b.next(n))
        lam_cyc, lam_id = cfg["lambda_cyc"], cfg["lambda_id"] * cfg["lambda_cyc"]

        with self.autocast():
            fake_b, fake_a = t["G_AB"](a), t["G_BA"](b)
            adv = (losses.lsgan_generator_loss(t["D_B"](fake_b).float())
                   + losses.lsgan_generator_loss(t["D_A"](fake_a).float()))
            cyc = ((t["G_BA"](fake_b) - a).abs().mean() + (t["G_AB"](fake_a) - b).abs().mean()).float()
            idt = ((t["G_BA"](a) - a).abs().mean() + (t["G_AB"](b) - b).abs().mean()).float() \
                if lam_id > 0 else torch.zeros((), device=self.device)
            loss_g = adv + lam_cyc * cyc + lam_id * idt
        self.D_A.requires_grad_(False), self.D_B.requires_grad_(False)
        grad_g = self.update(loss_g, self.optimizers["G"], self._parameters_G)
        self.D_A.requires_grad_(True), self.D_B.requires_grad_(True)

        pooled_b, pooled_a = self.pool_b.query(fake_b), self.pool_a.query(fake_a)
        with self.autocast():
            loss_d = 0.5 * (losses.lsgan_discriminator_loss(t["D_B"](b).float(), t["D_B"](pooled_b).float())
                            + losses.lsgan_discriminator_loss(t["D_A"](a).float(), t["D_A"](pooled_a).float()))
        grad_d = self.update(loss_d, self.optimizers["D"], self._parameters_D)
        for s in self.schedulers.values():
            s.step()
        self.images_seen += n * self.world_size
        return {"loss_G": loss_g.detach(), "loss_D": loss_d.detach(), "loss_G/adv": adv.detach(),
                "loss_G/cycle": cyc.detach(), "loss_G/identity": idt.detach(),
                "grad_norm/G": grad_g, "grad_norm/D": grad_d}

    def extra_state(self) -> dict:
        return {"batches_b": self.batches_b.state_dict(), "pool_rng": self.pool_rng.get_state(),
                "pool_a": list(self.pool_a.images), "pool_b": list(self.pool_b.images)}

    def load_extra_state(self, state: dict) -> None:
        self.batches_b.load_state_dict(state["batches_b"])
        self.pool_rng.set_state(state["pool_rng"])
        self.pool_a.images = [x.to(self.device) for x in state["pool_a"]]
        self.pool_b.images = [x.to(self.device) for x in state["pool_b"]]

    @torch.no_grad()
    def evaluate(self, metrics, n, seed, extractor) -> dict[str, float]:
        """PSNR and SSIM of both translations against the ground-truth pairs where the domains
        have them (``psnr_AtoB``, ``ssim_AtoB``, ``psnr_BtoA``, ``ssim_BtoA``), and ``metrics``
        between up to ``n`` real B images and the translations G_AB(A) of as many A images."""
        from ..metrics.translation import evaluate_translation

        results: dict[str, float] = {}
        generators = {"AtoB": self.G_AB, "BtoA": self.G_BA}
        for G in generators.values():
            G.eval()
        try:
            translate = {d: (lambda x, G=G: G(x.to(self.device))) for d, G in generators.items()}
            if self.domains.pairs:
                for direction, fn in translate.items():
                    scores = evaluate_translation(fn, self.domains, direction=direction)
                    results.update({f"{k}_{direction}": v for k, v in scores.items() if k != "n"})
            pick = torch.Generator().manual_seed(seed)
            k = min(n, len(self.domains.a), len(self.domains.b))
            a_idx = torch.randperm(len(self.domains.a), generator=pick)[:k].tolist()
            b_idx = torch.randperm(len(self.domains.b), generator=pick)[:k].tolist()
            real_b = torch.stack([self.domains.b[i][0] for i in b_idx])
            a = torch.stack([self.domains.a[i][0] for i in a_idx])
            fake_b = torch.cat([translate["AtoB"](a[s:s + 64]).float().cpu() for s in range(0, k, 64)])
            if k >= 2:
                results.update(self.score_sets(real_b, fake_b.clamp(-1, 1), metrics, seed, extractor))
        finally:
            for G in generators.values():
                G.train()
        return results

    @torch.no_grad()
    def sample(self) -> torch.Tensor:
        """Rows of k: real A, G_AB(A), real B, G_BA(B)."""
        k = self.fixed_z.shape[0] // 2
        a, b = self.fixed_z[:k], self.fixed_z[k:]
        return torch.cat([a, self.G_AB(a), b, self.G_BA(b)])


Trainer = CycleGANTrainer
