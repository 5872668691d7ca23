"""CycleGAN (Zhu et al. 2017, §3-4 and Appendix 7), step for step as the authors' code
(models/cycle_gan_model.py) trains it.

Two generators G_AB: A -> B and G_BA: B -> A, two PatchGAN discriminators D_A (judges domain A)
and D_B (judges domain B). In the authors' names: G_A = G_AB, G_B = G_BA, their D_A = our D_B
(it judges G_A's output) and their D_B = our D_A. One step on one batch a of A and b of B, with
``mse(s, t) = mean((s - t)^2)`` over every patch score (the LSGAN objective, their ``GANLoss``):

* generators, one Adam over both::

      loss_G = mse(D_B(G_AB(a)), 1) + mse(D_A(G_BA(b)), 1)                         adversarial
             + lambda_cyc * (|G_BA(G_AB(a)) - a|_1 + |G_AB(G_BA(b)) - b|_1)        cycle
             + lambda_id * lambda_cyc * (|G_BA(a) - a|_1 + |G_AB(b) - b|_1)        identity

  (|.|_1 the mean absolute error; the identity weight is lambda_identity times the cycle weight,
  as their code weights it; no factor 1/2 on the adversarial terms);
* discriminators, one Adam over both, on fakes drawn from a 50-image history pool per domain::

      loss_D = loss_D_A + loss_D_B,  loss_D_X = 0.5 * (mse(D_X(real x), 1) + mse(D_X(pooled fake x), 0))

  (the paper's "divide the objective by 2 while optimizing D", and no other factor).

Data: each domain is read in its own shuffled order; every image is stored at the load size
r·286/256 and each training image is a random r² crop of it, mirrored left-right with
probability 1/2 (``--preprocess``, ``--load-size``, ``--no-flip``; :mod:`pygan.data.domains`).

Length: ``n_epochs + n_epochs_decay`` epochs, an epoch being ``max(|A|, |B|) // batch_size``
steps (their unaligned dataset's length is the larger domain's). The learning rate is
``lr * factor``: with ``lr_decay="epoch"`` (their ``lambda_rule``, applied at the end of every
epoch) ``factor = 1 - max(0, e + 1 - n_epochs) / (n_epochs_decay + 1)`` during epoch e = 0, 1, …
(constant for n_epochs epochs, then n/(n+1) … 1/(n+1), never 0); with ``lr_decay="iteration"``
(the paper: "linearly decay the rate to zero over the next 100 epochs") ``factor = 1`` for the
first n_epochs epochs' steps and ``(T - s) / (T - S)`` at step s after that, T the total and S
the decay start, reaching 0 at the end.
"""

from __future__ import annotations

import itertools
import os

import torch

from ..data import UnpairedDomains, get_dataset
from ..data.domains import load_size as _load_size
from ..data.domains import random_crop_flip
from ..data.folder import domain_folders
from ..models import cyclegan
from . import distributed
from .batches import Batches
from .runner import Trainer

LR_DECAY = ("epoch", "iteration")


def generator_settings(cfg: dict) -> tuple[int, int]:
    """(ngf, residual blocks) of a run's generators, also for runs saved before --ngf existed."""
    ngf = cfg.get("ngf") or cfg["base_channels"]
    blocks = cfg.get("num_blocks")
    return int(ngf), int(cyclegan.paper_num_blocks(cfg["resolution"]) if blocks is None else blocks)


def is_bundled(cfg: dict) -> bool:
    name = cfg.get("data") or "emoji-skin-tones"
    return not cfg.get("data_b") and name.strip().lower().replace("_", "-") == "emoji-skin-tones"


def has_test_split(cfg: dict) -> bool:
    """Whether the run's --data is a folder with testA/ and testB/."""
    return not cfg.get("data_b") and not is_bundled(cfg) and domain_folders(cfg["data"], "test") is not None


def load_domains(cfg: dict, size: int, split: str = "train") -> UnpairedDomains | None:
    """Domains A and B at ``size``² from --data/--data-b: the bundled skin tones (with their
    ground-truth pairs), a folder (trainA/trainB[/testA/testB] or two subfolders), or two
    folders. ``split="test"``: the folder's testA/testB, or None where there are none."""
    c = cfg.get("channels")
    if cfg.get("data_b"):
        if split == "test":
            return None
        if not cfg.get("data"):
            raise ValueError("--data-b needs --data (domain A) as well")
        a, b = get_dataset(cfg["data"], size, c), get_dataset(cfg["data_b"], size, c)
        return UnpairedDomains(a, b, None, (os.path.basename(cfg["data"]), os.path.basename(cfg["data_b"])))
    if is_bundled(cfg):
        return None if split == "test" else get_dataset("emoji-skin-tones", size, c)
    if split == "test":
        if domain_folders(cfg["data"], "test") is None:
            return None
        from ..data.folder import folder_domains
        return folder_domains(cfg["data"], size, 3 if c is None else c, split="test")
    domains = get_dataset(cfg["data"], size, c, domains=True)
    return domains


def lr_factor(step: int, steps_per_epoch: int, n_epochs: int, n_epochs_decay: int,
              policy: str = "epoch") -> float:
    """Learning-rate multiplier for (0-based) step ``step``; see the module docstring."""
    if policy == "epoch":
        epoch = step // steps_per_epoch
        return 1.0 - max(0, epoch + 1 - n_epochs) / float(n_epochs_decay + 1)
    if policy != "iteration":
        raise ValueError(f"lr_decay must be one of {', '.join(LR_DECAY)}; got {policy!r}")
    start, total = n_epochs * steps_per_epoch, (n_epochs + n_epochs_decay) * steps_per_epoch
    if step < start:
        return 1.0
    return max(0.0, (total - step) / max(1, total - start))


def _mse(scores: torch.Tensor, target: float) -> torch.Tensor:
    """mean((scores - target)^2) in at least float32 (the authors' nn.MSELoss)."""
    if scores.dtype in (torch.float16, torch.bfloat16):
        scores = scores.float()
    return (scores - target).square().mean()


def _l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """mean(|x - y|) in at least float32 (the authors' nn.L1Loss)."""
    d = x - y
    return (d.float() if d.dtype in (torch.float16, torch.bfloat16) else d).abs().mean()


class CycleGANTrainer(Trainer):
    def __init__(self, cfg, device, rank, world_size):
        super().__init__(cfg, device, rank, world_size)
        r = cfg["resolution"]
        self.crop_size = r
        self.load_size = _load_size(r, cfg["preprocess"], cfg.get("load_size"))
        train = load_domains(cfg, self.load_size, "train")
        # evaluation and grids: whole images at r (the authors test at load = crop size), the
        # test split where the data has one
        test = load_domains(cfg, r, "test")
        self.domains = test or (train if self.load_size == r else load_domains(cfg, r, "train"))
        self.train_domains = train
        c = train.a[0][0].shape[0]
        ngf, blocks = generator_settings(cfg)
        self.G_AB = self.place(cyclegan.ResnetGenerator(c, c, ngf, blocks))
        self.G_BA = self.place(cyclegan.ResnetGenerator(c, c, ngf, blocks))
        self.D_A = self.place(cyclegan.PatchDiscriminator(c, cfg["ndf"]))
        self.D_B = self.place(cyclegan.PatchDiscriminator(c, cfg["ndf"]))
        self.nets = {"G_AB": self.G_AB, "G_BA": self.G_BA, "D_A": self.D_A, "D_B": self.D_B}
        self.train_nets = {k: distributed.wrap(m, device) for k, m in self.nets.items()}
        betas = tuple(float(b) for b in cfg["betas"])
        self.optimizers = {
            "G": torch.optim.Adam(itertools.chain(self.G_AB.parameters(), self.G_BA.parameters()),
                                  cfg["lr"], betas=betas),
            "D": torch.optim.Adam(itertools.chain(self.D_A.parameters(), self.D_B.parameters()),
                                  cfg["lr"], betas=betas)}
        # one epoch: the larger domain once (the authors' UnalignedDataset.__len__)
        self.steps_per_epoch = max(1, max(len(train.a), len(train.b)) // cfg["batch_size"])
        self.schedule_steps = (cfg["n_epochs"] + cfg["n_epochs_decay"]) * self.steps_per_epoch
        spe, n, nd, policy = self.steps_per_epoch, cfg["n_epochs"], cfg["n_epochs_decay"], cfg["lr_decay"]
        self.schedulers = {k: torch.optim.lr_scheduler.LambdaLR(
            o, lambda s: lr_factor(s, spe, n, nd, policy)) for k, o in self.optimizers.items()}
        self.batches = Batches(train.a, cfg["seed"], rank, world_size)
        self.batches_b = Batches(train.b, cfg["seed"] + 1, rank, world_size)
        self.pool_rng = torch.Generator().manual_seed(cfg["seed"] + 2)
        self.pool_a = cyclegan.ImagePool(cfg["pool_size"], self.pool_rng)   # fakes of A
        self.pool_b = cyclegan.ImagePool(cfg["pool_size"], self.pool_rng)   # fakes of B
        # crops and flips: their own generator per rank (the ranks see different images)
        self.augment_rng = torch.Generator().manual_seed(cfg["seed"] + 3 + 1000 * rank)
        k = max(1, min(cfg["grid_size"] // 2, len(self.domains.a), len(self.domains.b)))
        self.fixed_z = torch.cat([torch.stack([self.domains.a[i][0] for i in range(k)]),
                                  torch.stack([self.domains.b[i][0] for i in range(k)])]).to(device, self.dtype)
        self.names = self.domains.domain_names
        self._parameters_G = torch.nn.ModuleList([self.G_AB, self.G_BA])
        self._parameters_D = torch.nn.ModuleList([self.D_A, self.D_B])
        #: what the last step trained on (for tests): the augmented batches and the draws behind
        #: them, and the pooled fakes the discriminators saw
        self.last_step: dict = {}

    # --- length: epochs of the larger domain ---------------------------------------------------

    def total(self) -> int:
        steps = self.schedule_steps
        return steps if self.cfg.get("max_steps") is None else min(steps, self.cfg["max_steps"])

    def done(self) -> bool:
        return self.step >= self.total() or super().done()

    def postfix(self) -> dict:
        return {"epoch": self.step // self.steps_per_epoch}

    # --- one step ------------------------------------------------------------------------------

    def augment(self, images: torch.Tensor) -> tuple[torch.Tensor, dict]:
        return random_crop_flip(images, self.crop_size, self.cfg["flip"], self.augment_rng)

    def train_step(self) -> dict:
        cfg, t = self.cfg, self.train_nets
        n = self.per_rank(cfg["batch_size"])
        a, draws_a = self.augment(self.batches.next(n))
        b, draws_b = self.augment(self.batches_b.next(n))
        a, b = self.to_device(a), self.to_device(b)
        lam_cyc, lam_id = cfg["lambda_cyc"], cfg["lambda_id"] * cfg["lambda_cyc"]
        zero = torch.zeros((), device=self.device, dtype=self.dtype)

        with self.autocast():
            fake_b, fake_a = t["G_AB"](a), t["G_BA"](b)
            adv_ab, adv_ba = _mse(t["D_B"](fake_b), 1.0), _mse(t["D_A"](fake_a), 1.0)
            cyc_a, cyc_b = _l1(t["G_BA"](fake_b), a), _l1(t["G_AB"](fake_a), b)
            if lam_id > 0:
                idt_a, idt_b = _l1(t["G_BA"](a), a), _l1(t["G_AB"](b), b)
            else:
                idt_a = idt_b = zero
            loss_g = adv_ab + adv_ba + lam_cyc * (cyc_a + cyc_b) + lam_id * (idt_a + idt_b)
        self.D_A.requires_grad_(False), self.D_B.requires_grad_(False)
        grad_g = self.update(loss_g, self.optimizers["G"], self._parameters_G)
        self.D_A.requires_grad_(True), self.D_B.requires_grad_(True)

        pooled_b, pooled_a = self.pool_b.query(fake_b), self.pool_a.query(fake_a)
        with self.autocast():
            loss_d_b = 0.5 * (_mse(t["D_B"](b), 1.0) + _mse(t["D_B"](pooled_b), 0.0))
            loss_d_a = 0.5 * (_mse(t["D_A"](a), 1.0) + _mse(t["D_A"](pooled_a), 0.0))
            loss_d = loss_d_a + loss_d_b
        grad_d = self.update(loss_d, self.optimizers["D"], self._parameters_D)
        for s in self.schedulers.values():
            s.step()
        self.images_seen += n * self.world_size
        self.last_step = {"a": a, "b": b, "draws_a": draws_a, "draws_b": draws_b,
                          "pooled_a": pooled_a, "pooled_b": pooled_b}
        return {"loss_G": loss_g.detach(), "loss_D": loss_d.detach(),
                "G/adv_AB": adv_ab.detach(), "G/adv_BA": adv_ba.detach(),
                "G/cycle_A": cyc_a.detach(), "G/cycle_B": cyc_b.detach(),
                "G/identity_A": idt_a.detach(), "G/identity_B": idt_b.detach(),
                "D/A": loss_d_a.detach(), "D/B": loss_d_b.detach(),
                "grad_norm/G": grad_g, "grad_norm/D": grad_d}

    def extra_state(self) -> dict:
        return {"batches_b": self.batches_b.state_dict(), "pool_rng": self.pool_rng.get_state(),
                "augment_rng": self.augment_rng.get_state(),
                "pool_a": [x.cpu() for x in self.pool_a.images],
                "pool_b": [x.cpu() for x in self.pool_b.images]}

    def load_extra_state(self, state: dict) -> None:
        self.batches_b.load_state_dict(state["batches_b"])
        self.pool_rng.set_state(state["pool_rng"])
        if "augment_rng" in state:
            self.augment_rng.set_state(state["augment_rng"])
        self.pool_a.images = [x.to(self.device) for x in state["pool_a"]]
        self.pool_b.images = [x.to(self.device) for x in state["pool_b"]]

    @torch.no_grad()
    def evaluate(self, metrics, n, seed, extractor) -> dict[str, float]:
        """PSNR and SSIM of both translations against the ground-truth pairs where the domains
        have them (``psnr_AtoB``, ``ssim_AtoB``, ``psnr_BtoA``, ``ssim_BtoA``), and ``metrics``
        between up to ``n`` real B images and the translations G_AB(A) of as many A images; on
        the test split (testA/testB) where the data has one."""
        from ..metrics.translation import evaluate_translation

        results: dict[str, float] = {}
        generators = {"AtoB": self.G_AB, "BtoA": self.G_BA}
        for G in generators.values():
            G.eval()
        try:
            translate = {d: (lambda x, G=G: G(x.to(self.device, self.dtype))) for d, G in generators.items()}
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
        return torch.cat([a, self.G_AB(a), b, self.G_BA(b)]).float()


Trainer = CycleGANTrainer
