"""``python -m pygan.generate RUN_DIR_or_CHECKPOINT --n 64 --out grid.png``: images from a
trained generator.

Uses the EMA generator when the checkpoint has one (ProGAN), else G. ProGAN: ``--resolution``
picks any resolution the run has trained (default: the highest the checkpoint reached), read
from the run's ``res-XXXX.pt`` checkpoint when it is not the checkpoint's own. ``--interpolate K``
draws a grid of n/K rows, each K images along a spherical interpolation between two latents.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
from torchvision.utils import save_image

from .models import dcgan, gan, progan
from .train import checkpoint as ckpt
from .train.monitor import grid
from .train.schedule import Phase, ProGANSchedule


def build_generator(state: dict, use_ema: bool = True):
    """(generator in eval mode, call(z) -> images, latent_dim) from a checkpoint dict."""
    cfg = state["config"]
    model = cfg["model"]
    nets = state["nets"]
    if model == "cyclegan":
        raise ValueError("a CycleGAN checkpoint translates images: use python -m pygan.translate")
    if model == "progan":
        key = "G_ema" if use_ema and "G_ema" in nets else "G"
        c = nets[key]["to_rgb.0.weight"].shape[0]
        G = progan.Generator(cfg["resolution"], cfg["latent_dim"], c, cfg["fmap_base"], cfg["fmap_max"])
        G.load_state_dict(nets[key])
        sched = ProGANSchedule(cfg["resolution"], int(cfg["fade_kimg"] * 1000), int(cfg["stable_kimg"] * 1000))
        phase = sched.at(int(state["images_seen"]))
        done = state.get("finished_resolution")
        if done is not None and done != phase.resolution:   # res-XXXX.pt: its own resolution
            phase = Phase.stable_at(done)
        return G.eval(), phase, cfg["latent_dim"]
    sd = nets["G"]
    r = cfg["resolution"]
    if model == "gan":
        hidden = tuple(max(1, int(w * cfg["width"])) for w in (256, 512, 1024))
        c = sd["net.{}.weight".format(2 * len(hidden))].shape[0] // (r * r)
        G = gan.Generator(cfg["latent_dim"], (c, r, r), hidden)
    else:
        last = max(int(k.split(".")[1]) for k in sd if k.startswith("main.") and k.endswith("weight"))
        c = sd[f"main.{last}.weight"].shape[1]
        G = dcgan.Generator(r, cfg["latent_dim"], c, cfg["base_channels"])
    G.load_state_dict(sd)
    return G.eval(), None, cfg["latent_dim"]


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between latents a and b (rows) at fractions t."""
    an, bn = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    omega = torch.acos((an * bn).sum(-1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so) * a + (torch.sin(t * omega) / so) * b


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pygan.generate", description=__doc__.split("\n\n")[0])
    p.add_argument("source", help="run directory (latest checkpoint) or checkpoint file")
    p.add_argument("--n", type=int, default=64, help="number of images (default: 64)")
    p.add_argument("--out", default="grid.png", help="output PNG grid (default: grid.png)")
    p.add_argument("--seed", type=int, default=0, help="latent seed (default: 0)")
    p.add_argument("--resolution", type=int, default=None,
                   help="ProGAN: a trained resolution (default: the checkpoint's)")
    p.add_argument("--interpolate", type=int, default=0, metavar="K",
                   help="K > 1: rows of K images interpolating between two latents (default: off)")
    p.add_argument("--no-ema", action="store_true", help="use G rather than its EMA")
    p.add_argument("--device", default="cpu", help="device (default: cpu)")
    args = p.parse_args(argv)
    try:
        if args.n < 1:
            raise ValueError(f"--n must be >= 1, got {args.n}")
        path = ckpt.find(args.source)
        state = ckpt.load(path)
        if args.resolution is not None and state["config"]["model"] == "progan":
            run_dir = os.path.dirname(os.path.dirname(path))
            G, phase, latent = build_generator(state, not args.no_ema)
            if args.resolution != phase.resolution:
                trained = ckpt.resolution_checkpoints(run_dir)
                if args.resolution not in trained:
                    raise ValueError(f"--resolution {args.resolution} was not trained in {run_dir}; "
                                     f"trained: {sorted(trained) or 'none'} (and {phase.resolution} "
                                     "in this checkpoint)")
                state = ckpt.load(trained[args.resolution])
        G, phase, latent = build_generator(state, not args.no_ema)
        if phase is not None and args.resolution is not None:
            if args.resolution & (args.resolution - 1) or not 4 <= args.resolution <= G.resolution:
                raise ValueError(f"--resolution must be a power of two in [4, {G.resolution}]; "
                                 f"got {args.resolution}")
            phase = Phase.stable_at(args.resolution)
        G.to(args.device)
        g = torch.Generator().manual_seed(args.seed)
        if args.interpolate > 1:
            rows = max(1, args.n // args.interpolate)
            a, b = torch.randn(rows, latent, generator=g), torch.randn(rows, latent, generator=g)
            t = torch.linspace(0, 1, args.interpolate).view(1, -1, 1)
            z = slerp(a[:, None], b[:, None], t).reshape(-1, latent)
        else:
            z = torch.randn(args.n, latent, generator=g)
        with torch.no_grad():
            z = z.to(args.device)
            images = G(z, phase.alpha, phase.steps) if phase is not None else G(z)
        out = grid(images) if args.interpolate <= 1 else None
        if out is None:
            from torchvision.utils import make_grid
            out = make_grid(images.float().cpu().clamp(-1, 1).add(1).div(2), nrow=args.interpolate,
                            padding=1, pad_value=1.0)
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        save_image(out, args.out)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"python -m pygan.generate: error: {e}", file=sys.stderr)
        return 2
    res = f" at {images.shape[-1]}x{images.shape[-1]}"
    print(f"wrote {len(images)} images{res} from {path} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
