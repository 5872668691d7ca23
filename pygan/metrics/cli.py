"""``python -m pygan.eval RUN_DIR_or_CHECKPOINT --metrics swd,msssim,fid,kid,pr``: score a trained
generator against real data, print a table and write JSON.

The checkpoint is the training CLI's (``pygan.train``; a run directory means its latest
checkpoint). Real data: ``--real`` (a bundled name or a folder), default the data the run trained
on, at the generator's resolution and channel count. GAN/DCGAN/WGAN/ProGAN checkpoints draw
``--n`` samples (ProGAN: the EMA generator at the checkpoint's current resolution); CycleGAN
checkpoints translate every image of domain A (and B) and report PSNR/SSIM against the
ground-truth pairs (``emoji-skin-tones``), plus the chosen metrics between G_AB(A) and B; a run
trained on a folder with ``testA/`` and ``testB/`` is scored on those held-out images.
Features for fid/kid/pr: the bundled network, or ``--inception-weights PATH`` for InceptionV3.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

from .evaluate import METRICS, evaluate, evaluate_images, parse_metrics
from .features import get_feature_extractor
from .translation import evaluate_translation


def load_generator(source: str, use_ema: bool = True, device: str = "cpu") -> dict:
    """Load the generator(s) of a training checkpoint (or a run directory's latest one).

    Returns ``{"path", "model", "config", "resolution", "data"}`` plus, for sampling models,
    ``"sample": fn(b, generator) -> b images in [-1, 1]``, or for CycleGAN ``"translate":
    {"AtoB": G_AB, "BtoA": G_BA}``. This is the one place that knows the checkpoint format (it
    reuses ``pygan.generate.build_generator``); point it at another format here.
    """
    from ..data import DEFAULT_DATASETS
    from ..generate import build_generator
    from ..models import cyclegan
    from ..train import checkpoint as ckpt
    from ..train.loop_cyclegan import generator_settings

    path = ckpt.find(source)
    state = ckpt.load(path)
    cfg = state["config"]
    model = cfg["model"]
    info = {"path": path, "model": model, "config": cfg,
            "data": cfg.get("data") or DEFAULT_DATASETS[model]}
    if model == "cyclegan":
        nets = {}
        for direction, key in (("AtoB", "G_AB"), ("BtoA", "G_BA")):
            sd = state["nets"][key]
            c = sd["model.1.weight"].shape[1]
            G = cyclegan.ResnetGenerator(c, c, *generator_settings(cfg))
            G.load_state_dict(sd)
            nets[direction] = G.eval().to(device)
        info.update(translate=nets, resolution=cfg["resolution"], channels=c)
        return info
    G, phase, latent = build_generator(state, use_ema)
    G.to(device)

    def sample(b: int, generator: torch.Generator) -> torch.Tensor:
        z = torch.randn(b, latent, generator=generator).to(device)
        return G(z, phase.alpha, phase.steps) if phase is not None else G(z)

    with torch.no_grad():
        probe = sample(1, torch.Generator().manual_seed(0))
    info.update(sample=sample, resolution=probe.shape[-1], channels=probe.shape[1])
    return info


def format_table(results: dict[str, float]) -> str:
    width = max(len(k) for k in results) if results else 6
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  {'-' * 12}"]
    for k, v in results.items():
        lines.append(f"{k:<{width}}  {v:.6g}" if isinstance(v, float) else f"{k:<{width}}  {v}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pygan.eval", description=__doc__.split("\n\n")[0])
    p.add_argument("source", help="run directory (latest checkpoint) or checkpoint file")
    p.add_argument("--metrics", default=",".join(METRICS),
                   help=f"comma-separated subset of {','.join(METRICS)} (default: all)")
    p.add_argument("--real", default=None, help="real data: bundled name or folder (default: the run's data)")
    p.add_argument("--n", type=int, default=1000, help="images per set (default: 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of latents, real subset and metrics (default: 0)")
    p.add_argument("--inception-weights", default=None, metavar="PATH",
                   help="InceptionV3 weights file: fid/kid/pr on Inception features instead of the bundled net")
    p.add_argument("--out", default=None, help="JSON file (default: RUN_DIR/eval/<checkpoint>.json)")
    p.add_argument("--batch-size", type=int, default=256, help="batch size (default: 256)")
    p.add_argument("--no-ema", action="store_true", help="ProGAN: use G rather than its EMA")
    p.add_argument("--device", default="cpu", help="device (default: cpu)")
    args = p.parse_args(argv)
    try:
        from ..data import get_dataset

        names = parse_metrics(args.metrics)
        if args.n < 2:
            raise ValueError(f"--n must be >= 2, got {args.n}")
        extractor = None
        if {"fid", "kid", "pr"} & set(names):
            kind = "inception" if args.inception_weights is not None else "bundled"
            extractor = get_feature_extractor(kind, args.inception_weights, args.device)
        start = time.time()
        info = load_generator(args.source, not args.no_ema, args.device)
        real_name = args.real or info["data"]
        results: dict = {}
        if info["model"] == "cyclegan":
            from ..data.folder import folder_domains
            from ..train.loop_cyclegan import has_test_split

            bundled = real_name.strip().lower().replace("_", "-") == "emoji-skin-tones"
            if args.real is None and has_test_split(info["config"]):
                # a trainA/trainB/testA/testB folder: score the held-out test images
                domains = folder_domains(real_name, info["resolution"], info["channels"], split="test")
                real_name = os.path.join(real_name, "testA|testB")
            else:
                domains = get_dataset(real_name, info["resolution"], info["channels"], domains=not bundled)
            if domains.pairs:
                for direction, G in info["translate"].items():
                    scores = evaluate_translation(G, domains, direction=direction, batch_size=args.batch_size)
                    results.update({f"{k}_{direction}": v for k, v in scores.items() if k != "n"})
            n = min(args.n, len(domains.a), len(domains.b))
            a = torch.stack([domains.a[i][0] for i in range(n)])
            b = torch.stack([domains.b[i][0] for i in range(n)])
            with torch.no_grad():
                fake = torch.cat([info["translate"]["AtoB"](a[s:s + args.batch_size].to(args.device)).cpu()
                                  for s in range(0, n, args.batch_size)]).clamp(-1, 1)
            results.update(evaluate_images(b, fake, names, extractor=extractor, seed=args.seed,
                                           batch_size=args.batch_size, device=args.device))
        else:
            real = get_dataset(real_name, info["resolution"], info["channels"])
            g = torch.Generator().manual_seed(args.seed)
            results.update(evaluate(lambda b: info["sample"](b, g), real, names, n=args.n, seed=args.seed,
                                    extractor=extractor, batch_size=args.batch_size, device=args.device))
        out = args.out
        if out is None:
            run_dir = os.path.dirname(os.path.dirname(os.path.abspath(info["path"])))
            out = os.path.join(run_dir, "eval", os.path.splitext(os.path.basename(info["path"]))[0] + ".json")
        record = {"checkpoint": info["path"], "model": info["model"], "real": real_name,
                  "resolution": info["resolution"], "n": args.n, "seed": args.seed,
                  "features": "inception" if args.inception_weights else "bundled",
                  "seconds": round(time.time() - start, 2), "results": results}
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        with open(out, "w") as f:
            json.dump(record, f, indent=1)
            f.write("\n")
    except (ValueError, FileNotFoundError, RuntimeError, KeyError) as e:
        print(f"python -m pygan.eval: error: {e}", file=sys.stderr)
        return 2
    print(format_table(results))
    print(f"wrote {out}")
    return 0
