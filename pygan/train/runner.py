"""The life of a run, shared by every model: set-up, the step loop, checkpoints, signals, the
NaN guard, logging and grids. Each model's loop module (``loop_*.py``) supplies a
:class:`Trainer` subclass with the networks, optimisers and one training step.

Exact resume: a checkpoint is written only between two steps and holds every bit of state the
next step reads: weights, optimiser moments, the GradScaler, EMA weights, the step and images
seen (hence ProGAN's resolution and alpha), torch's RNG states on every rank, the data order and
any model extras (CycleGAN's image pools). Restoring it and running the remaining steps gives the
same weights as a run never interrupted (on the CPU with ``--deterministic true``; GPU kernels
may be non-deterministic).
"""

from __future__ import annotations

import json
import math
import os
import shlex
import signal
import sys
import time

import torch
import torch.distributed as dist
from torch import nn

from .. import ops
from . import checkpoint, distributed
from .batches import Batches
from .config import CONFIG_NAME
from .evaluation import Evaluator
from .monitor import Monitor

FORMAT_VERSION = 1
#: Fault injection for tests: ``kill:STEP`` SIGKILLs the process right after step STEP.
FAULT_ENV = "PYGAN_TRAIN_FAULT"


class NonFiniteLossError(RuntimeError):
    """A loss or the weights became NaN or infinite; the run stops without a checkpoint."""


class Trainer:
    """Base class of the per-model trainers. Subclasses build ``self.nets`` (name -> module, the
    unwrapped networks that checkpoints store), ``self.optimizers`` (name -> optimiser),
    ``self.batches`` and ``self.fixed_z``, and implement :meth:`train_step` and :meth:`sample`."""

    #: Progress unit: "img" (length in images, ProGAN) or "step".
    unit = "step"

    def __init__(self, cfg: dict, device: torch.device, rank: int, world_size: int) -> None:
        self.cfg = cfg
        self.device = device
        self.rank, self.world_size = rank, world_size
        self.nets: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler] = {}
        self.step = 0
        self.images_seen = 0
        amp = cfg["amp"]
        self.amp_dtype = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]
        self.scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")
        #: parameter and data dtype (``--dtype``; float64 for the fused-vs-reference equality tests)
        self.dtype = {"float32": torch.float32, "float64": torch.float64}[cfg.get("dtype", "float32")]
        self.memory_format = torch.channels_last if cfg["channels_last"] else torch.contiguous_format

    # --- helpers for the loops ----------------------------------------------------------------

    def per_rank(self, global_batch: int) -> int:
        if global_batch % self.world_size:
            raise ValueError(f"--batch-size {global_batch} must be divisible by the "
                             f"{self.world_size} processes")
        return global_batch // self.world_size

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                              enabled=self.amp_dtype is not None)

    def to_device(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, dtype=self.dtype if x.is_floating_point() else None, non_blocking=True)
        return x.contiguous(memory_format=self.memory_format) if x.dim() == 4 else x

    def place(self, module: nn.Module) -> nn.Module:
        return module.to(self.device, self.dtype, memory_format=self.memory_format)

    def latent(self, n: int, dim: int) -> torch.Tensor:
        return torch.randn(n, dim, device=self.device, dtype=self.dtype)

    def update(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, module: nn.Module) -> float:
        """Backward ``loss`` (scaled under fp16), average gradients over ranks, step the
        optimiser; returns the gradient norm (unscaled) for logging."""
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        params = [p for p in module.parameters() if p.requires_grad]
        distributed.average_gradients(params)
        self.scaler.unscale_(optimizer)
        grads = [p.grad for p in params if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])) \
            if grads else torch.zeros(())
        self.scaler.step(optimizer)
        self.scaler.update()
        return norm

    # --- what subclasses provide --------------------------------------------------------------

    def train_step(self) -> dict:
        """One iteration; returns scalar metrics (tensors or floats). Adds to ``images_seen``."""
        raise NotImplementedError

    @torch.no_grad()
    def sample(self) -> torch.Tensor:
        """Images from the fixed latent batch (EMA generator where there is one)."""
        return self.generate(self.fixed_z)

    def grid_name(self) -> str:
        return f"step-{self.step:07d}"

    # --- training-time evaluation (see :mod:`.evaluation`) --------------------------------------

    @torch.no_grad()
    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] from latents ``z`` with the network the grids show: ``self.G`` in
        eval mode (DCGAN's batch norm then uses its running statistics, not the batch's own)."""
        self.G.eval()
        try:
            return self.G(z)
        finally:
            self.G.train()

    def eval_real(self, n: int, seed: int) -> torch.Tensor:
        """Up to ``n`` real images (float in [-1, 1], on the CPU) the samples are compared with;
        the same ones for a given seed. Default: from ``self.eval_data``."""
        from ..metrics.evaluate import sample_real

        return sample_real(self.eval_data, min(n, len(self.eval_data)), seed)

    def eval_context(self) -> dict:
        """What the evaluation row records besides step and images (ProGAN: resolution, alpha)."""
        return {}

    def competes_for_best(self) -> bool:
        """Whether an evaluation now may become ``best.pt`` (ProGAN: final resolution only)."""
        return True

    @torch.no_grad()
    def evaluate(self, metrics: tuple[str, ...], n: int, seed: int, extractor) -> dict[str, float]:
        """``metrics`` of ``n`` samples from latents drawn with ``seed`` against ``n`` real
        images chosen with ``seed`` (so successive evaluations see the same latents and reals).
        SWD needs images of 16x16 or more and is left out below that."""
        from ..metrics.evaluate import sample_fake

        real = self.eval_real(n, seed)
        latents = torch.Generator().manual_seed(seed)
        fake = sample_fake(lambda b: self.generate(torch.randn(b, self.latent_dim, generator=latents)
                                                   .to(self.device)), len(real))
        return self.score_sets(real, fake, metrics, seed, extractor)

    def score_sets(self, real: torch.Tensor, fake: torch.Tensor, metrics: tuple[str, ...], seed: int,
                   extractor) -> dict[str, float]:
        """``metrics`` between image sets ``real`` and ``fake``; SWD and MS-SSIM are left out for
        images below their smallest size (16x16: SWD's lowest pyramid level, MS-SSIM's coarsest
        scale), as at ProGAN's first resolutions or for a small MLP GAN."""
        from ..metrics.evaluate import evaluate_images
        from ..metrics.msssim import MIN_RESOLUTION as MSSSIM_MIN
        from ..metrics.swd import MIN_RESOLUTION as SWD_MIN

        smallest = {"swd": SWD_MIN, "msssim": MSSSIM_MIN}
        metrics = tuple(m for m in metrics if min(real.shape[-2:]) >= smallest.get(m, 0))
        if not metrics:
            return {}
        return evaluate_images(real, fake, metrics, extractor=extractor, seed=seed, device=self.device)

    def postfix(self) -> dict:
        return {}

    def total(self) -> int:
        """The run's length in this trainer's unit."""
        cfg = self.cfg
        if self.unit == "img":
            return int(cfg["kimg"] * 1000)
        if cfg.get("max_steps") is None:
            raise ValueError("give the run's length with --max-steps or --kimg")
        return cfg["max_steps"]

    def done(self) -> bool:
        cfg = self.cfg
        if cfg.get("max_steps") is not None and self.step >= cfg["max_steps"]:
            return True
        return cfg.get("kimg") is not None and self.images_seen >= cfg["kimg"] * 1000

    def before_step(self, run: "Run") -> None:
        """Hook run before each step (ProGAN: resolution changes)."""

    def at_end(self, run: "Run") -> None:
        """Hook run once training is over (ProGAN: the last resolution's grid and checkpoint)."""

    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    # --- checkpoints ---------------------------------------------------------------------------

    def state_dict(self, rng_states: list[torch.Tensor]) -> dict:
        return {
            "format": FORMAT_VERSION,
            "config": {k: v for k, v in self.cfg.items()},
            "step": self.step,
            "images_seen": self.images_seen,
            "nets": {k: m.state_dict() for k, m in self.nets.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "scaler": self.scaler.state_dict(),
            "rng": rng_states,
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
            "batches": self.batches.state_dict(),
            "fixed_z": self.fixed_z.cpu(),
            "extra": self.extra_state(),
            "world_size": self.world_size,
        }

    def load_state_dict(self, state: dict) -> None:
        self.step, self.images_seen = int(state["step"]), int(state["images_seen"])
        for k, m in self.nets.items():
            m.load_state_dict(state["nets"][k])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        for k, s in self.schedulers.items():
            s.load_state_dict(state["schedulers"][k])
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        self.batches.load_state_dict(state["batches"])
        self.fixed_z = state["fixed_z"].to(self.device)
        self.load_extra_state(state["extra"])
        if state["world_size"] == self.world_size:
            torch.set_rng_state(state["rng"][self.rank])
            if self.device.type == "cuda" and state["cuda_rng"]:
                torch.cuda.set_rng_state_all(state["cuda_rng"])

    def weights_finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for m in self.nets.values() for p in m.parameters())


def _finite(metrics: dict) -> tuple[bool, str]:
    """Whether every loss and penalty is finite. Gradient norms are not checked: under fp16 the
    GradScaler meets inf/NaN gradients by design, skips that update and lowers its scale (with
    fp32/bf16 a non-finite gradient shows up as a non-finite loss one step later, and the
    weights are checked before every checkpoint)."""
    for name, value in metrics.items():
        if name.startswith("grad_norm/"):
            continue
        v = float(value)
        if not math.isfinite(v):
            return False, f"{name} = {v}"
    return True, ""


class Run:
    """Drives a :class:`Trainer`: resume, loop, checkpoints, signals, monitoring."""

    def __init__(self, trainer: Trainer, cfg: dict) -> None:
        self.trainer = trainer
        self.cfg = cfg
        self.run_dir = cfg["out"]
        self.main = distributed.is_main()
        self.stop_signal: int | None = None
        self.last_checkpoint: str | None = None
        self.grids: list[str] = []
        self.evaluator = Evaluator(cfg, self.run_dir, self.main)

    # checkpoints
    def _rng_states(self) -> list[torch.Tensor]:
        state = torch.get_rng_state()
        if dist.is_initialized() and dist.get_world_size() > 1:
            gathered = [torch.empty_like(state) for _ in range(dist.get_world_size())]
            dist.all_gather(gathered, state)
            return gathered
        return [state]

    def _state(self) -> dict:
        state = self.trainer.state_dict(self._rng_states())
        state["evaluation"] = self.evaluator.state_dict()
        return state

    def save_checkpoint(self, best: bool = False) -> str | None:
        """The periodic checkpoint (or, with ``best``, ``checkpoints/best.pt``)."""
        t = self.trainer
        if not distributed.any_flag(not t.weights_finite(), t.device):
            state = self._state()
            if self.main:
                if best:
                    checkpoint.atomic_save(state, self.evaluator.best_path())
                else:
                    self.last_checkpoint = checkpoint.save(state, self.run_dir, t.step,
                                                           self.cfg["keep_checkpoints"])
            distributed.barrier()
            return self.last_checkpoint
        raise NonFiniteLossError(f"the weights became NaN or infinite by step {t.step}; no "
                                 "checkpoint written")

    def save_resolution_checkpoint(self, resolution: int) -> None:
        state = self._state()
        # written as the next resolution starts fading in: say which one it finished
        state["finished_resolution"] = resolution
        if self.main:
            checkpoint.save_resolution(state, self.run_dir, resolution)
        distributed.barrier()

    def save_grid(self, name: str | None = None) -> None:
        images = self.trainer.sample()
        if self.main:
            path = self.monitor.save_grid(images, name or self.trainer.grid_name(), self.trainer.step)
            self.grids.append(path)

    def _on_signal(self, signum, frame) -> None:
        if self.stop_signal is not None:      # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.stop_signal = signum

    def resume(self) -> None:
        path = checkpoint.latest(self.run_dir)
        if path is None:
            raise FileNotFoundError(f"--resume: {self.run_dir} holds no checkpoint to resume from")
        state = checkpoint.load(path, self.trainer.device)
        self.trainer.load_state_dict(state)
        self.evaluator.load_state_dict(state.get("evaluation"))
        self.last_checkpoint = path
        if self.main:
            print(f"resumed from {path} (step {self.trainer.step}, "
                  f"{self.trainer.images_seen} images)", flush=True)

    def execute(self) -> int:
        cfg, t = self.cfg, self.trainer
        if cfg.get("resume"):
            self.resume()
        elif self.main and checkpoint.latest(self.run_dir):
            raise FileExistsError(f"--out {self.run_dir} already holds checkpoints: continue it with "
                                  f"--resume {self.run_dir} or choose another --out")
        if self.main:
            os.makedirs(self.run_dir, exist_ok=True)
            saved = {k: v for k, v in cfg.items() if k not in ("resume", "config")}
            with open(os.path.join(self.run_dir, CONFIG_NAME), "w") as f:
                json.dump(saved, f, indent=2, sort_keys=True)
        distributed.barrier()
        initial = t.images_seen if t.unit == "img" else t.step
        self.monitor = Monitor(self.run_dir, t.total(), t.unit, initial, self.main,
                               cfg["tensorboard"], cfg["progress"])
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        fault = os.environ.get(FAULT_ENV, "")
        kill_at = int(fault.split(":")[1]) if fault.startswith("kill:") else None
        try:
            if t.step == 0:
                self.save_grid()
            start = time.perf_counter()
            while not t.done():
                t.before_step(self)
                before = t.images_seen
                metrics = t.train_step()
                t.step += 1
                ok, what = _finite(metrics)
                if distributed.any_flag(not ok, t.device):
                    where = (f"the last good checkpoint is {self.last_checkpoint}; continue from it "
                             f"with --resume {self.run_dir}" if self.last_checkpoint
                             else "no checkpoint had been written yet")
                    raise NonFiniteLossError(f"non-finite loss at step {t.step} ({what or 'on another rank'}); "
                                             f"stopping without writing a checkpoint: {where}. "
                                             "Lower --lr or check the data.")
                self._report(metrics, t.images_seen - before)
                if t.step % cfg["sample_every"] == 0:
                    self.save_grid()
                if self.evaluator.due(t.images_seen):
                    self.evaluator(self)
                stop = distributed.any_flag(self.stop_signal is not None, t.device)
                if t.step % cfg["checkpoint_every"] == 0 or stop:
                    self.save_checkpoint()
                if stop:
                    name = signal.Signals(self.stop_signal or signal.SIGTERM).name
                    self.monitor.write(f"{name}: checkpoint written to {self.last_checkpoint}; "
                                       f"continue with --resume {self.run_dir}")
                    return 128 + int(self.stop_signal or signal.SIGTERM)
                if kill_at is not None and t.step == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)
            t.at_end(self)
            if self.evaluator.enabled and self.evaluator.last_images != t.images_seen:
                self.evaluator(self)
            self.save_checkpoint()
            self.save_grid()
            if self.main:
                elapsed = time.perf_counter() - start
                self.monitor.close()
                print(f"done: {t.step} steps, {t.images_seen} images in {elapsed:.0f} s\n"
                      f"grids: {os.path.abspath(self.monitor.grid_dir)} (latest {self.grids[-1]})\n"
                      f"checkpoint: {self.last_checkpoint}", flush=True)
                if self.evaluator.best is not None:
                    ev = self.evaluator
                    print(f"best {ev.best_metric} {ev.best:.4g} at step {ev.best_step}: {ev.best_path()} "
                          f"(every evaluation: {os.path.join(self.run_dir, 'eval.jsonl')})", flush=True)
            return 0
        finally:
            self.monitor.close()
            for s, handler in old.items():
                signal.signal(s, handler)

    def _report(self, metrics: dict, images: int) -> None:
        t, cfg = self.trainer, self.cfg
        scalars = {k: float(v) for k, v in metrics.items()}
        postfix = {k: f"{v:.3g}" for k, v in scalars.items() if k.startswith("loss")}
        postfix.update(t.postfix())
        self.monitor.update(images if t.unit == "img" else 1, postfix)
        if t.step % cfg["log_every"] == 0 and self.main:
            scalars["images_per_s"] = self.monitor.images_per_second(t.images_seen)
            for name, opt in t.optimizers.items():
                scalars[f"lr/{name}"] = opt.param_groups[0]["lr"]
            scalars["images_seen"] = t.images_seen
            self.monitor.scalars(scalars, t.step)


def open_data(cfg: dict, default: str, **kwargs):
    """The run's training images (``--data``, else the bundled ``default``) via
    :func:`pygan.data.get_dataset`; a set that cannot be read is a ValueError naming --data."""
    from ..data import get_dataset

    name = cfg["data"] or default
    try:
        return get_dataset(name, cfg["resolution"], cfg["channels"], **kwargs)
    except (ValueError, OSError) as e:
        raise ValueError(f"--data {name}: {e}") from None


def resume_command(cfg: dict, world_size: int = 1) -> str:
    """The command that continues this run from its latest checkpoint."""
    launcher = (f"torchrun --nproc-per-node {world_size} -m pygan.train" if world_size > 1
                else "python -m pygan.train")
    return f"{launcher} {cfg['model']} --resume {shlex.quote(os.path.abspath(cfg['out']))}"


def where_it_lives(cfg: dict, world_size: int = 1) -> str:
    """What a run prints before its first step (before the progress bar): its directory, how to
    watch it in TensorBoard, and how to continue it after a stop."""
    run_dir = os.path.abspath(cfg["out"])
    lines = [f"run directory: {run_dir}  (config.json, grids/, checkpoints/"
             + (", eval.jsonl" if cfg.get("eval_every") else "") + ")"]
    if cfg.get("tensorboard"):
        lines.append(f"watch it:      tensorboard --logdir {shlex.quote(os.path.join(run_dir, 'tensorboard'))}")
    lines.append(f"resume it:     {resume_command(cfg, world_size)}")
    return "\n".join(lines)


def preflight(cfg: dict) -> None:
    """What can be said about the run directory before anything is built: ``--resume`` needs a
    checkpoint in it, a new run needs an ``--out`` without one."""
    found = checkpoint.latest(cfg["out"])
    if cfg.get("resume"):
        if found is None:
            raise FileNotFoundError(f"--resume: {cfg['out']} holds no checkpoint to resume from")
    elif found is not None:
        raise FileExistsError(f"--out {cfg['out']} already holds checkpoints: continue it with "
                              f"--resume {cfg['out']} or choose another --out")


def setup_error(message: object) -> int:
    """A configuration problem found before training: one line on stderr (argparse's form, no
    traceback) and exit code 2."""
    if distributed.env_world()[0] == 0:
        print(f"python -m pygan.train: error: {message}", file=sys.stderr, flush=True)
    return 2


def select_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    return device


def run(cfg: dict, trainer_class) -> int:
    """Set up the process (device, ranks, backend, seeds) and train; returns the exit code.
    Problems with the configuration found while setting up (a run directory that cannot be
    used, data that cannot be read, a network that rejects its sizes) end the run with one line
    and exit code 2, as :func:`pygan.train.config.validate` does for those it can find first."""
    try:
        preflight(cfg)
        device = select_device(cfg["device"])
    except (ValueError, OSError) as e:
        return setup_error(e)
    rank, world = distributed.init(device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", distributed.env_world()[2])
        torch.cuda.set_device(device)
    try:
        ops.set_backend(cfg["backend"])
        ops.selftest.guard(device)   # on CUDA: auto skips any kernel that fails the ops self-test
        if cfg["deterministic"]:
            torch.use_deterministic_algorithms(True)
        torch.manual_seed(cfg["seed"] * 1000 + rank)
        if rank == 0:   # before the data is read and long before the progress bar
            print(where_it_lives(cfg, world), flush=True)
        try:
            trainer = trainer_class(cfg, device, rank, world)
        except (ValueError, OSError) as e:
            return setup_error(e)
        try:
            return Run(trainer, cfg).execute()
        except NonFiniteLossError as e:
            if rank == 0:
                print(f"\nerror: {e}", file=sys.stderr, flush=True)
            return 3
    finally:
        distributed.cleanup()
