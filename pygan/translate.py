"""``python -m pygan.translate RUN_DIR_or_CHECKPOINT [INPUT] --out OUT [--direction AtoB|BtoA]``:
translate one image or a folder of images with a trained CycleGAN.

INPUT is an image file (OUT is then the output file) or a folder (OUT is then a folder; each
image is written under its own name as PNG). Without INPUT, a run trained on a folder with the
authors' ``testA/`` and ``testB/`` translates its test images: ``testA/`` for AtoB, ``testB/``
for BtoA. Images are resized to the run's resolution (the authors test at load size = crop size).
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
from PIL import Image
from torchvision.utils import save_image

from .models import cyclegan
from .train import checkpoint as ckpt
from .train.loop_cyclegan import generator_settings, has_test_split

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff")


def load_image(path: str, resolution: int, channels: int) -> torch.Tensor:
    """An image file as float (C, r, r) in [-1, 1]."""
    img = Image.open(path).convert("RGB" if channels == 3 else "L").resize(
        (resolution, resolution), Image.Resampling.BICUBIC)
    t = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
    return t.view(resolution, resolution, channels).permute(2, 0, 1).float().div(127.5).sub(1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pygan.translate", description=__doc__.split("\n\n")[0])
    p.add_argument("source", help="CycleGAN run directory (latest checkpoint) or checkpoint file")
    p.add_argument("input", nargs="?", default=None,
                   help="an image file or a folder of images (default: the run's testA/ for AtoB, "
                        "testB/ for BtoA, where its --data folder has them)")
    p.add_argument("--out", required=True, help="output image (for a file) or folder (for a folder)")
    p.add_argument("--direction", default="AtoB", choices=("AtoB", "BtoA"),
                   help="AtoB uses G_AB, BtoA uses G_BA (default: AtoB)")
    p.add_argument("--device", default="cpu", help="device (default: cpu)")
    args = p.parse_args(argv)
    try:
        path = ckpt.find(args.source)
        state = ckpt.load(path)
        cfg = state["config"]
        if cfg["model"] != "cyclegan":
            raise ValueError(f"{path} is a {cfg['model']} checkpoint; translate needs a cyclegan one "
                             "(use python -m pygan.generate)")
        key = "G_AB" if args.direction == "AtoB" else "G_BA"
        sd = state["nets"][key]
        c = sd["model.1.weight"].shape[1]
        G = cyclegan.ResnetGenerator(c, c, *generator_settings(cfg))
        G.load_state_dict(sd)
        G.eval().to(args.device)
        if args.input is None:
            if not has_test_split(cfg):
                raise ValueError(f"give INPUT: the run's data ({cfg.get('data') or 'emoji-skin-tones'}) "
                                 "has no testA/ and testB/ folders to translate")
            side = "testA" if args.direction == "AtoB" else "testB"
            args.input = os.path.join(os.path.expanduser(cfg["data"]), side)
        if os.path.isdir(args.input):
            files = sorted(f for f in os.listdir(args.input) if f.lower().endswith(EXTENSIONS))
            if not files:
                raise ValueError(f"input folder {args.input} holds no images ({', '.join(EXTENSIONS)})")
            os.makedirs(args.out, exist_ok=True)
            pairs = [(os.path.join(args.input, f), os.path.join(args.out, os.path.splitext(f)[0] + ".png"))
                     for f in files]
        elif os.path.isfile(args.input):
            os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
            pairs = [(args.input, args.out)]
        else:
            raise FileNotFoundError(f"input not found: {args.input}")
        with torch.no_grad():
            for src, dst in pairs:
                x = load_image(src, cfg["resolution"], c)[None].to(args.device)
                save_image(G(x)[0].cpu().clamp(-1, 1).add(1).div(2), dst)
    except (ValueError, FileNotFoundError, RuntimeError, OSError) as e:
        print(f"python -m pygan.translate: error: {e}", file=sys.stderr)
        return 2
    print(f"translated {len(pairs)} image(s) {args.direction} with {path} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
