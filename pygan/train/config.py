"""Training options: the presets each paper prescribes, the command line, and config files.

A run's configuration is a flat dict of plain values (JSON-serialisable, so it can be stored in
the run directory and inside checkpoints loaded with ``weights_only=True``). It is resolved in
four layers, each overriding the one before:

1. the model's preset (:func:`preset`), which follows its paper and depends on whether the run
   is on a GPU (ProGAN trains to 64x64 at paper widths there, and at a reduced size on a CPU);
2. with ``--resume RUN_DIR``, the resolved config stored in that run directory;
3. a YAML or JSON file given with ``--config``;
4. the options given on the command line.

Argparse defaults are suppressed so that only the options a person actually typed override the
layers below; ``--help`` still prints each option's preset default.
"""

from __future__ import annotations

import argparse
import json
import os
import time

MODELS = ("gan", "dcgan", "wgan", "wgan-gp", "lsgan", "cyclegan", "progan")
AMP_MODES = ("none", "bf16", "fp16")
CONFIG_NAME = "config.json"

# --- presets ---------------------------------------------------------------------------------

_COMMON = {
    "data": None, "data_b": None, "out": None, "channels": None, "seed": 0,
    "backend": "auto", "device": "auto", "amp": "none", "dtype": "float32", "channels_last": False,
    "deterministic": False, "max_steps": None, "kimg": None,
    "sample_every": 500, "checkpoint_every": 1000, "keep_checkpoints": 3, "log_every": 10,
    "grid_size": 64, "tensorboard": True, "progress": True,
    # training-time evaluation (pygan.metrics): every eval_every images, eval_n images per set
    "eval_every": 64_000, "eval_metrics": "swd,fid", "eval_n": 256, "best_metric": "fid",
    "inception_weights": None,
}


#: Named presets (``--preset NAME``) per model, each with the source it follows (shown in --help).
#: Without ``--preset`` a model gets its default preset, which depends on CPU vs GPU.
PRESETS = {
    "progan": {
        "paper": "Karras et al. 2018 (ICLR), section 3 and Appendix A.1: 800k fade-in + 800k "
                 "stabilisation images per resolution, minibatch 16 up to 128x128 then 14/6/3 at "
                 "256/512/1024, minibatch stddev over the whole minibatch, Adam 1e-3 betas (0, "
                 "0.99) eps 1e-8, WGAN-GP lambda 10 + drift 0.001, generator EMA 0.999; where the "
                 "paper is silent, the config that produced its CelebA-HQ results (the authors' "
                 "Theano config.py, celeb-hq-1024x1024): 19000 kimg, mirror augmentation, a "
                 "40k-image learning-rate rampup, Adam state rebuilt at each phase change; 64x64 "
                 "at the paper's widths (the bundled emoji are 72x72; give --resolution for larger "
                 "data)",
        "official": "the authors' TensorFlow code, config.py as released (preset-v2-1gpu, fp32, "
                    "CelebA-HQ with mirror_augment) and the train.py/networks.py/loss.py "
                    "defaults: 600k + 600k images per resolution, minibatch 128/128/128/64/32/16/"
                    "8/4/4 from 4x4 to 1024x1024, stddev groups of 4, learning rate 0.0015 at "
                    "1024x1024, Adam state reset whenever the level of detail changes, 12000 "
                    "kimg in total (train.py's own default is 15000)",
    },
    "cyclegan": {
        "paper": "Zhu et al. 2017 (ICCV), section 4 and Appendix 7: 256x256 with 9 residual blocks "
                 "(6 below 256), ngf = ndf = 64, instance norm, 70x70 PatchGAN, LSGAN losses, "
                 "lambda = 10, no identity loss (the paper adds it, at 0.5 lambda, only for "
                 "painting -> photo), history pool 50, Adam lr 0.0002 with batch size 1, 100 "
                 "epochs then a linear decay to zero over 100 more, N(0, 0.02) weights; where the "
                 "paper is silent (Adam beta1, the resize-286 / crop-256 / flip augmentation) the "
                 "authors' code",
        "official": "the authors' PyTorch code (junyanz/pytorch-CycleGAN-and-pix2pix: "
                    "options/base_options.py, train_options.py, models/cycle_gan_model.py): "
                    "resnet_9blocks at 256x256 (--preprocess resize_and_crop, load 286, flip), "
                    "ngf = ndf = 64, lambda_A = lambda_B = 10, lambda_identity 0.5, pool 50, Adam "
                    "0.0002 beta1 0.5, batch 1, n_epochs 100 + n_epochs_decay 100 with the "
                    "learning rate lowered at the end of each epoch (1/101 in the last, never 0)",
    },
}

#: What a model gets without ``--preset`` (shown in --help beside the named presets).
DEFAULT_PRESET_SOURCES = {
    "cyclegan": "on a GPU the official preset; on a CPU the official recipe on 32x32 crops of "
                "36x36 images with ngf = ndf = 16 and 2 residual blocks for a few epochs of the "
                "bundled skin-tone emoji (a couple of minutes on 2 cores)",
    "progan": "on a CPU, the paper's recipe reduced to finish in about ten minutes on 2 cores "
              "(32x32, fmap_base 256 / fmap_max 64, latent 64, 20k + 20k images per phase, "
              "minibatch 16, EMA 0.99, stddev groups of 4); on a GPU, 64x64 at the paper's "
              "widths and minibatch 16 with the official code's 600k + 600k and stddev groups of 4",
}

_PROGAN_PAPER_MINIBATCH = {"4": 16, "8": 16, "16": 16, "32": 16, "64": 16, "128": 16,
                           "256": 14, "512": 6, "1024": 3}
# config.py preset-v2-1gpu minibatch_dict, capped by its fp32 max_minibatch_per_gpu
# {256: 16, 512: 8, 1024: 4}; 1024 falls back to minibatch_base 4
_PROGAN_OFFICIAL_MINIBATCH = {"4": 128, "8": 128, "16": 128, "32": 64, "64": 32, "128": 16,
                              "256": 8, "512": 4, "1024": 4}


def _progan_named(name: str) -> dict:
    """The ``paper`` or ``official`` ProGAN settings (see :data:`PRESETS` for their sources)."""
    cfg = dict(resolution=64, latent_dim=512, fmap_base=8192, fmap_max=512, ema_beta=0.999,
               reset_optimizer=True, sample_every=1000, checkpoint_every=2000, eval_every=100_000)
    if name == "paper":
        cfg.update(fade_kimg=800.0, stable_kimg=800.0, minibatch=dict(_PROGAN_PAPER_MINIBATCH),
                   mbstd_group=None, mirror=True, lr_dict={}, kimg=19000.0, lr_rampup_kimg=40.0)
    else:
        cfg.update(fade_kimg=600.0, stable_kimg=600.0, minibatch=dict(_PROGAN_OFFICIAL_MINIBATCH),
                   mbstd_group=4, mirror=True, lr_dict={"1024": 0.0015}, kimg=12000.0)
    return cfg


def preset(model: str, cuda: bool, name: str | None = None) -> dict:
    """The paper's settings for ``model`` (plus run-size defaults; smaller without a GPU), or
    the named preset ``name`` of :data:`PRESETS`."""
    if model not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}; got {model!r}")
    if name is not None and name not in PRESETS.get(model, {}):
        known = ", ".join(PRESETS.get(model, {})) or "none"
        raise ValueError(f"--preset {name!r} is not a preset of {model} (presets: {known})")
    cfg = dict(_COMMON)
    if cuda:
        cfg["eval_n"] = 1000
    if model == "gan":          # Goodfellow et al. 2014 with the common MLP / Adam recipe
        cfg.update(resolution=28, latent_dim=100, batch_size=64, lr=2e-4, betas=[0.5, 0.999],
                   max_steps=5000, width=1.0)
    elif model in ("dcgan", "lsgan"):   # Radford et al. 2016; Mao et al. 2017 (same optimiser)
        cfg.update(resolution=32, latent_dim=100, batch_size=128, lr=2e-4, betas=[0.5, 0.999],
                   base_channels=64 if cuda else 32, max_steps=5000)
    elif model == "wgan":       # Arjovsky et al. 2017, Algorithm 1
        cfg.update(resolution=32, latent_dim=100, batch_size=64, lr=5e-5, clip=0.01,
                   critic_steps=5, base_channels=64 if cuda else 32, critic_norm="none",
                   max_steps=5000)
    elif model == "wgan-gp":    # Gulrajani et al. 2017, Algorithm 1
        cfg.update(resolution=32, latent_dim=100, batch_size=64, lr=1e-4, betas=[0.0, 0.9],
                   gp_lambda=10.0, critic_steps=5, base_channels=64 if cuda else 32,
                   critic_norm="layer", max_steps=5000)
    elif model == "cyclegan":   # Zhu et al. 2017, §4 and Appendix 7; the authors' PyTorch code
        # the official recipe (GPU: as is; CPU: smaller crops, widths and run; see PRESETS)
        cfg.update(resolution=256 if cuda else 32, load_size=None, preprocess="resize_and_crop",
                   flip=True, batch_size=1, lr=2e-4, betas=[0.5, 0.999],
                   lambda_cyc=10.0, lambda_id=0.5, pool_size=50,
                   ngf=64 if cuda else 16, ndf=64 if cuda else 16,
                   # None: the paper's rule, 9 blocks from 256x256 up, 6 below
                   num_blocks=None if cuda else 2,
                   # CPU: 4 + 4 epochs of the 335 skin-tone pairs = 2680 steps, about 2-2.5 min
                   # on 2 quiet cores (~40 ms a step at 32x32, 16 filters, 2 blocks)
                   n_epochs=100 if cuda else 4, n_epochs_decay=100 if cuda else 4, lr_decay="epoch",
                   max_steps=None, grid_size=8, preset=name,
                   # PSNR/SSIM against the ground-truth pairs where the data has them
                   eval_every=20_000 if cuda else 500, eval_metrics="fid", best_metric="psnr_AtoB")
        if name is not None:
            cfg.update(resolution=256, ngf=64, ndf=64, num_blocks=None, n_epochs=100,
                       n_epochs_decay=100, eval_every=20_000, eval_n=1000)
            if name == "paper":
                cfg.update(lambda_id=0.0, lr_decay="iteration")
    elif model == "progan":     # Karras et al. 2018, §3-4 and Appendix A
        if cuda:    # 64x64 at the paper's widths and minibatch; the official code's 600k + 600k
            cfg.update(resolution=64, latent_dim=512, fmap_base=8192, fmap_max=512,
                       fade_kimg=600.0, stable_kimg=600.0,
                       minibatch={"4": 16, "8": 16, "16": 16, "32": 16, "64": 16})
        else:   # reduced so that the default run finishes in about ten minutes on 2 cores
            # measured (2 cores, 2026-12-01): 20k images per phase grow 4x4 -> 32x32 in 7.6 min,
            # ending at SWD 33 / FID 19 with recognisable emoji; 3k per phase to 16x16 gave
            # coloured noise (SWD 96); the paper's 600k per phase would take hours
            cfg.update(resolution=32, latent_dim=64, fmap_base=256, fmap_max=64,
                       fade_kimg=20.0, stable_kimg=20.0,
                       minibatch={"4": 16, "8": 16, "16": 16, "32": 16})
        cfg.update(batch_size=None, lr=1e-3, betas=[0.0, 0.99], gp_lambda=10.0,
                   # 0.999 averages over ~1000 steps, longer than a phase of the reduced CPU run
                   drift=0.001, ema_beta=0.999 if cuda else 0.99, critic_steps=1, max_steps=None,
                   sample_every=1000 if cuda else 250, checkpoint_every=2000 if cuda else 500,
                   grid_size=64,
                   # the paper's SWD picks the best checkpoint (at the final resolution only)
                   eval_every=100_000 if cuda else 20_000, best_metric="swd",
                   # minibatch stddev groups of 4 (official code; None = whole minibatch, the
                   # paper), the Theano code's averaging; Adam reset at every phase change
                   # (official train.py); no mirroring; learning rate per resolution overrides
                   preset=name, mbstd_group=4, mbstd_averaging="all", mirror=False,
                   reset_optimizer=True, lr_dict={}, lr_rampup_kimg=0.0,
                   # --loss lsgan: the Theano code's LSGAN (fake term weight 0.1) with the
                   # paper's adaptive multiplicative noise in D, strength d_noise * max(0, a - 0.5)^2
                   loss="wgan-gp", lsgan_fake_weight=0.1, d_noise=0.2)
        if name is not None:
            cfg.update(_progan_named(name))
            cfg["eval_n"] = 1000
    cfg["model"] = model
    return cfg


# --- command line ----------------------------------------------------------------------------

def _betas(text: str) -> list[float]:
    parts = text.replace(",", " ").split()
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected two numbers 'beta1,beta2', got {text!r}")
    return [float(p) for p in parts]


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _group(text: str) -> int | None:
    """``--mbstd-group``: a positive integer, or ``batch`` for the whole minibatch (None)."""
    if text.strip().lower() in ("batch", "none", "all"):
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a group size or 'batch', got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a group size >= 1 or 'batch', got {text!r}")
    return value


def _minibatch(text: str) -> dict:
    """``"4:32,8:32,16:16"`` -> {"4": 32, ...}; ProGAN's per-resolution minibatch."""
    out = {}
    for item in text.split(","):
        if ":" not in item:
            raise argparse.ArgumentTypeError(f"expected 'resolution:batch,...', got {text!r}")
        r, b = item.split(":", 1)
        out[str(int(r))] = int(b)
    return out


# (flag, dest, type, help, models that have it or None for all). Booleans take no value.
_OPTIONS = [
    ("--config", "config", str, "YAML or JSON file of options (command line overrides it)", None),
    ("--data", "data", str, "bundled data set name (emoji, emoji-skin-tones, mnist, photos) or an "
     "image folder; default: the model's bundled set", None),
    ("--data-b", "data_b", str, "CycleGAN's second domain (folder); with --data a folder too", ("cyclegan",)),
    ("--out", "out", str, "run directory (default runs/<model>-<timestamp>)", None),
    ("--resume", "resume", str, "continue the run in RUN_DIR from its latest checkpoint", None),
    ("--resolution", "resolution", int, "image size (ProGAN: final resolution)", None),
    ("--channels", "channels", int, "image channels (default: the data set's own)", None),
    ("--batch-size", "batch_size", int, "global minibatch (ProGAN: all resolutions; "
     "see --minibatch)", None),
    ("--minibatch", "minibatch", _minibatch, "ProGAN's per-resolution minibatch, '4:32,8:32,...'",
     ("progan",)),
    ("--max-steps", "max_steps", int, "stop after this many training iterations", None),
    ("--kimg", "kimg", float, "stop after this many thousand real images (ProGAN default: the "
     "whole schedule)", None),
    ("--lr", "lr", float, "learning rate (both networks)", None),
    ("--betas", "betas", _betas, "Adam betas 'b1,b2'", ("gan", "dcgan", "lsgan", "wgan-gp", "cyclegan",
                                                       "progan")),
    ("--latent-dim", "latent_dim", int, "size of z", ("gan", "dcgan", "lsgan", "wgan", "wgan-gp",
                                                      "progan")),
    ("--width", "width", float, "scale of the MLP's hidden widths", ("gan",)),
    ("--base-channels", "base_channels", int, "network width (ngf/ndf)", ("dcgan", "lsgan", "wgan",
                                                                         "wgan-gp")),
    ("--critic-norm", "critic_norm", str, "critic normalisation: layer or none", ("wgan", "wgan-gp")),
    ("--critic-steps", "critic_steps", int, "critic updates per generator update",
     ("wgan", "wgan-gp")),
    ("--clip", "clip", float, "WGAN weight clipping value", ("wgan",)),
    ("--gp-lambda", "gp_lambda", float, "gradient penalty weight", ("wgan-gp", "progan")),
    ("--drift", "drift", float, "ProGAN drift penalty epsilon", ("progan",)),
    ("--fmap-base", "fmap_base", int, "ProGAN feature maps nf(k) = fmap_base / 2^k", ("progan",)),
    ("--fmap-max", "fmap_max", int, "ProGAN maximum feature maps", ("progan",)),
    ("--fade-kimg", "fade_kimg", float, "ProGAN fade-in length per resolution, thousand images",
     ("progan",)),
    ("--stable-kimg", "stable_kimg", float, "ProGAN stabilisation length per resolution, "
     "thousand images", ("progan",)),
    ("--ema-beta", "ema_beta", float, "generator EMA decay", ("progan",)),
    ("--preset", "preset", str, "named settings: 'paper' or 'official' (see above for their "
     "sources); without it, the CPU or GPU default", ("progan", "cyclegan")),
    ("--mirror", "mirror", _bool, "flip each real image horizontally with probability 1/2 "
     "(the official mirror_augment; true/false)", ("progan",)),
    ("--reset-optimizer", "reset_optimizer", _bool, "reset Adam's moments whenever a resolution "
     "starts fading in and when it starts stabilising (the official reset_opt_for_new_lod; "
     "true/false)", ("progan",)),
    ("--mbstd-group", "mbstd_group", _group, "minibatch stddev group size, or 'batch' for the "
     "whole minibatch", ("progan",)),
    ("--mbstd-averaging", "mbstd_averaging", str, "minibatch stddev averaging of the Theano code: "
     "all, spatial, none, gpool, flat or groupN", ("progan",)),
    ("--lr-rampup-kimg", "lr_rampup_kimg", float, "learning rate times exp(-5 (1 - t)^2), t = "
     "images / this many thousand, until t = 1 (the Theano code's rampup; 0: off)", ("progan",)),
    ("--loss", "loss", str, "wgan-gp (WGAN-GP + drift) or lsgan (with adaptive noise in D)",
     ("progan",)),
    ("--lsgan-fake-weight", "lsgan_fake_weight", float, "LSGAN: weight of D's fake-image term",
     ("progan",)),
    ("--d-noise", "d_noise", float, "LSGAN: D's multiplicative input noise strength is "
     "D_NOISE * max(0, a - 0.5)^2, a the 0.9-average of D's output on reals (0: off)",
     ("progan",)),
    ("--lambda-cyc", "lambda_cyc", float, "cycle-consistency weight", ("cyclegan",)),
    ("--lambda-id", "lambda_id", float, "identity weight (times lambda_cyc)", ("cyclegan",)),
    ("--pool-size", "pool_size", int, "history pool of generated images", ("cyclegan",)),
    ("--num-blocks", "num_blocks", int, "residual blocks of the generator (none: 9 from "
     "256x256 up, 6 below, the paper's rule)", ("cyclegan",)),
    ("--ngf", "ngf", int, "generator filters in the first layer", ("cyclegan",)),
    ("--ndf", "ndf", int, "discriminator filters in the first layer", ("cyclegan",)),
    ("--preprocess", "preprocess", str, "training images: resize_and_crop (load at --load-size, "
     "random --resolution crop) or none (whole images at --resolution)", ("cyclegan",)),
    ("--load-size", "load_size", int, "side images are loaded at before the random crop (none: "
     "round(resolution * 286 / 256), 286 for 256)", ("cyclegan",)),
    ("--no-flip", "flip", None, "do not mirror training images left-right (by default each is "
     "mirrored with probability 1/2)", ("cyclegan",)),
    ("--n-epochs", "n_epochs", int, "epochs at the initial learning rate (an epoch: the larger "
     "domain once)", ("cyclegan",)),
    ("--n-epochs-decay", "n_epochs_decay", int, "epochs of linear learning-rate decay after "
     "them", ("cyclegan",)),
    ("--lr-decay", "lr_decay", str, "epoch (lowered at the end of each epoch, to 1/(n+1) of the "
     "rate in the last one: the authors' code) or iteration (every step, to zero: the paper)",
     ("cyclegan",)),
    ("--eval-every", "eval_every", int, "evaluate the generator every N images, logging to "
     "TensorBoard and eval.jsonl and keeping checkpoints/best.pt (0: off)", None),
    ("--eval-metrics", "eval_metrics", str, "training-time metrics, a subset of "
     "swd,msssim,fid,kid,pr", None),
    ("--eval-n", "eval_n", int, "images per set in training-time evaluation", None),
    ("--best-metric", "best_metric", str, "result that picks checkpoints/best.pt: swd, fid, kid, "
     "msssim, precision, recall, density, coverage (CycleGAN also psnr_AtoB, ssim_AtoB, "
     "psnr_BtoA, ssim_BtoA)", None),
    ("--inception-weights", "inception_weights", str, "InceptionV3 weights file: fid/kid/pr on "
     "Inception features instead of the bundled feature net", None),
    ("--backend", "backend", str, "pygan ops backend: auto, reference, cpp, cuda, triton", None),
    ("--device", "device", str, "auto, cpu, cuda, cuda:N", None),
    ("--amp", "amp", str, "mixed precision: none, bf16, fp16", None),
    ("--dtype", "dtype", str, "parameter and data dtype: float32, or float64 (exact comparisons, "
     "e.g. fused vs reference backends; not with --amp)", None),
    ("--channels-last", "channels_last", _bool, "channels-last memory format (true/false)", None),
    ("--deterministic", "deterministic", _bool, "deterministic algorithms (true/false)", None),
    ("--seed", "seed", int, "random seed", None),
    ("--sample-every", "sample_every", int, "save an image grid every N steps", None),
    ("--checkpoint-every", "checkpoint_every", int, "write a checkpoint every N steps", None),
    ("--keep-checkpoints", "keep_checkpoints", int, "periodic checkpoints kept (the last k)", None),
    ("--log-every", "log_every", int, "log scalars every N steps", None),
    ("--grid-size", "grid_size", int, "images in each sample grid", None),
    ("--tensorboard", "tensorboard", _bool, "write TensorBoard logs (true/false)", None),
    ("--progress", "progress", _bool, "show a progress bar (true/false)", None),
]


def _default_text(model: str, dest: str) -> str:
    cpu, gpu = preset(model, False).get(dest), preset(model, True).get(dest)
    if dest in ("config", "resume"):
        return "none"
    text = ("none" if cpu is None else str(cpu)) if cpu == gpu else f"{cpu} on CPU, {gpu} on GPU"
    named = [(n, preset(model, True, n).get(dest)) for n in PRESETS.get(model, {})]
    if dest != "preset" and any(value != cpu or value != gpu for _, value in named):
        text += "".join(f"; {n}: {'none' if v is None else v}" for n, v in named)
    return text


def build_parser() -> argparse.ArgumentParser:
    """``python -m pygan.train <model> [options]``; each model's --help shows its defaults."""
    parser = argparse.ArgumentParser(
        prog="python -m pygan.train",
        description="Train a GAN from the pygan model zoo. Example: python -m pygan.train progan")
    sub = parser.add_subparsers(dest="model", metavar="MODEL", required=True,
                                help=", ".join(MODELS))
    for model in MODELS:
        presets = "".join(f" --preset {n}: {source}." for n, source in PRESETS.get(model, {}).items())
        p = sub.add_parser(model, help=f"train {model}", argument_default=argparse.SUPPRESS,
                           description=f"Train {model}. Options override a --config file, which "
                                       "overrides the preset shown as each default."
                                       + (f" Presets:{presets}" if presets else "")
                                       + (f" Without --preset: {DEFAULT_PRESET_SOURCES[model]}."
                                          if model in DEFAULT_PRESET_SOURCES else ""))
        for flag, dest, kind, text, models in _OPTIONS:
            if models is not None and model not in models:
                continue
            if kind is None:        # a switch that turns its option off: --no-flip sets flip false
                p.add_argument(flag, dest=dest, action="store_const", const=False, help=text)
                continue
            # a boolean flag alone means true: --mirror is --mirror true
            extra = {"nargs": "?", "const": True} if kind is _bool else {}
            p.add_argument(flag, dest=dest, type=kind, metavar=dest.upper(), **extra,
                           help=f"{text} (default: {_default_text(model, dest)})")
    return parser


def load_file(path: str) -> dict:
    """Options from a YAML (``.yaml``/``.yml``) or JSON file, keys spelt as flags or dests."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--config: no such file {path}")
    with open(path) as f:
        text = f.read()
    if path.endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError as e:
            raise RuntimeError("--config: reading YAML needs PyYAML (pip install pyyaml); "
                               "or give a .json file") from e
        data = yaml.safe_load(text) or {}
    else:
        data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"--config: {path} must hold a mapping of option: value")
    return {k.lstrip("-").replace("-", "_"): v for k, v in data.items()}


def validate(cfg: dict) -> dict:
    """Check values and types; errors name the option and what was expected."""
    known = set(preset(cfg["model"], True)) | set(preset(cfg["model"], False)) | {"resume", "config"}
    for name in PRESETS.get(cfg["model"], {}):
        known |= set(preset(cfg["model"], True, name))
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise ValueError(f"unknown option(s) for {cfg['model']}: {', '.join(unknown)}")
    if cfg["amp"] not in AMP_MODES:
        raise ValueError(f"--amp must be one of {', '.join(AMP_MODES)}; got {cfg['amp']!r}")
    if cfg.get("dtype", "float32") not in ("float32", "float64"):
        raise ValueError(f"--dtype must be float32 or float64; got {cfg['dtype']!r}")
    if cfg.get("dtype") == "float64" and cfg["amp"] != "none":
        raise ValueError(f"--dtype float64 cannot be combined with --amp {cfg['amp']} (mixed "
                         "precision is for float32 runs)")
    for key in ("batch_size", "max_steps", "sample_every", "checkpoint_every", "log_every",
                "grid_size", "resolution", "keep_checkpoints"):
        value = cfg.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"--{key.replace('_', '-')} must be a positive integer; got {value!r}")
    for key in ("lr", "kimg", "fade_kimg", "stable_kimg"):
        value = cfg.get(key)
        if value is not None and not (isinstance(value, (int, float)) and value > 0):
            raise ValueError(f"--{key.replace('_', '-')} must be a positive number; got {value!r}")
    _validate_evaluation(cfg)
    _validate_general(cfg)
    if cfg["model"] in SMALL_GANS:
        _validate_small_gan(cfg)
    if cfg["model"] == "progan":
        _validate_progan(cfg)
    if cfg["model"] == "cyclegan":
        _validate_cyclegan(cfg)
    return cfg


def _validate_cyclegan(cfg: dict) -> None:
    """CycleGAN's options and data, checked before any work starts (one line naming the option):
    sizes the networks accept, the crop inside the load size, and --data/--data-b folders that
    hold images in a layout CycleGAN reads (file names only; nothing is decoded)."""
    from ..data.domains import PREPROCESS, UNSUPPORTED_PREPROCESS
    from ..models.cyclegan import min_resolution

    def count(key: str, low: int) -> None:
        value = cfg.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"--{key.replace('_', '-')} must be an integer >= {low}; got {value!r}")

    for key, low in (("ngf", 1), ("ndf", 1), ("n_epochs", 0), ("n_epochs_decay", 0), ("pool_size", 0)):
        count(key, low)
    if cfg["n_epochs"] + cfg["n_epochs_decay"] < 1:
        raise ValueError("--n-epochs plus --n-epochs-decay must be at least 1 epoch")
    if cfg.get("num_blocks") is not None:
        count("num_blocks", 0)
    for key in ("lambda_cyc", "lambda_id"):
        value = cfg.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"--{key.replace('_', '-')} must be a number >= 0; got {value!r}")
    if cfg.get("lr_decay") not in ("epoch", "iteration"):
        raise ValueError(f"--lr-decay must be epoch or iteration; got {cfg.get('lr_decay')!r}")
    if not isinstance(cfg.get("flip"), bool):
        raise ValueError(f"flip must be true or false (--no-flip turns it off); got {cfg.get('flip')!r}")
    pre = cfg.get("preprocess")
    if pre in UNSUPPORTED_PREPROCESS:
        raise ValueError(f"--preprocess {pre} keeps each image's own size or aspect ratio, which "
                         f"pygan's fixed-size image stores do not; use {' or '.join(PREPROCESS)}")
    if pre not in PREPROCESS:
        raise ValueError(f"--preprocess must be one of {', '.join(PREPROCESS)}; got {pre!r}")
    r, smallest = cfg["resolution"], min_resolution()
    if r < smallest or r % 4:
        raise ValueError(f"--resolution must be a multiple of 4 and at least {smallest} for cyclegan "
                         f"(the 70x70 PatchGAN shrinks {smallest}x{smallest} to one score and "
                         f"anything smaller to nothing; the generator halves it twice); got {r}")
    load = cfg.get("load_size")
    if load is not None:
        if isinstance(load, bool) or not isinstance(load, int) or load < 1:
            raise ValueError(f"--load-size must be a positive integer; got {load!r}")
        if pre == "resize_and_crop" and load < r:
            raise ValueError(f"--load-size {load} is smaller than the {r}x{r} crop (--resolution); "
                             f"the crop must fit inside the loaded image")
    _validate_cyclegan_data(cfg)


def _validate_cyclegan_data(cfg: dict) -> None:
    from ..data import BUNDLED_NAMES
    from ..data.folder import check_image_folder, domain_folders

    data, data_b = cfg.get("data"), cfg.get("data_b")
    try:
        if data_b:
            if not data:
                raise ValueError("--data-b needs --data (domain A) as well")
            for flag, path in (("--data", data), ("--data-b", data_b)):
                try:
                    check_image_folder(path)
                except (ValueError, OSError) as e:
                    raise ValueError(f"{flag}: {e}") from None
            return
        if data is None or data.strip().lower().replace("_", "-") == "emoji-skin-tones":
            return
        if data.strip().lower().replace("_", "-") in BUNDLED_NAMES:
            raise ValueError(f"--data {data!r} is one domain: give --data-b for domain B, use "
                             "emoji-skin-tones, or a folder with trainA/ and trainB/")
        domain_folders(data, "train")
    except (ValueError, OSError) as e:
        text = str(e)
        raise ValueError(text if text.startswith("--data") else f"--data: {text}") from None


def _validate_progan(cfg: dict) -> None:
    """ProGAN's options, each checked before any work starts (one line naming the option)."""
    r = cfg["resolution"]
    if r < 4 or r & (r - 1):
        raise ValueError(f"--resolution must be a power of two >= 4 for progan; got {r}")
    resolutions = [4 * 2**s for s in range(r.bit_length() - 2)]
    mb = cfg.get("minibatch") or {}
    missing = [str(q) for q in resolutions if str(q) not in mb]
    if cfg.get("batch_size") is None and missing:
        raise ValueError(f"--minibatch lacks resolution(s) {', '.join(missing)}; give "
                         "--minibatch '4:16,8:16,...' or one --batch-size")
    batches = {q: cfg["batch_size"] or mb[str(q)] for q in resolutions}
    for q, n in batches.items():
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"--minibatch: the batch at {q}x{q} must be a positive integer; got {n!r}")
    group = cfg.get("mbstd_group")
    if group is not None:
        if isinstance(group, bool) or not isinstance(group, int) or group < 1:
            raise ValueError(f"--mbstd-group must be a positive integer or 'batch'; got {group!r}")
        # the stddev groups split each rank's share of the batch (DDP splits it first)
        world = int(os.environ.get("WORLD_SIZE", "1"))
        for q, n in batches.items():
            local = n // world if n % world == 0 else n
            if local % min(group, local):
                which = "--batch-size" if cfg["batch_size"] else f"--minibatch at {q}x{q}"
                raise ValueError(f"{which} gives {local} images per process, which is not divisible "
                                 f"by the minibatch stddev group --mbstd-group {group}")
    from ..nn.minibatch_std import parse_averaging
    from ..models.progan import feature_maps

    try:
        _, stats = parse_averaging(cfg.get("mbstd_averaging", "all"))
    except ValueError as e:
        raise ValueError(f"--mbstd-averaging: {e}") from None
    width = feature_maps(1, cfg["fmap_base"], cfg["fmap_max"])
    if width % stats:
        raise ValueError(f"--mbstd-averaging {cfg['mbstd_averaging']}: the {width} feature maps at "
                         f"4x4 (--fmap-base/--fmap-max) are not divisible into {stats} groups")
    if cfg.get("loss", "wgan-gp") not in ("wgan-gp", "lsgan"):
        raise ValueError(f"--loss must be wgan-gp or lsgan for progan; got {cfg['loss']!r}")
    for key in ("gp_lambda", "drift", "lsgan_fake_weight", "d_noise", "lr_rampup_kimg"):
        value = cfg.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"--{key.replace('_', '-')} must be a number >= 0; got {value!r}")
    beta = cfg.get("ema_beta")
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0 <= beta < 1:
        raise ValueError(f"--ema-beta must be in [0, 1); got {beta!r}")
    for key in ("mirror", "reset_optimizer"):
        if not isinstance(cfg.get(key), bool):
            raise ValueError(f"--{key.replace('_', '-')} must be true or false; got {cfg.get(key)!r}")
    for q, lr in (cfg.get("lr_dict") or {}).items():
        q_int = int(q) if str(q).isdigit() else 0
        if not (isinstance(lr, (int, float)) and lr > 0) or q_int < 4 or q_int & (q_int - 1):
            raise ValueError(f"lr_dict: expected 'resolution': learning rate > 0 with resolutions "
                             f"powers of two >= 4; got {q!r}: {lr!r}")


#: The models of ``loop_gan`` and ``loop_wgan``.
SMALL_GANS = ("gan", "dcgan", "lsgan", "wgan", "wgan-gp")


def _number(cfg: dict, key: str, low: float, strict: bool, kind=(int, float)) -> None:
    """``cfg[key]`` (when present) must be a ``kind`` above ``low`` (or at least it)."""
    if key not in cfg:
        return
    value = cfg[key]
    ok = not isinstance(value, bool) and isinstance(value, kind) and (value > low if strict else value >= low)
    if not ok:
        what = "an integer" if kind is int else "a number"
        raise ValueError(f"--{key.replace('_', '-')} must be {what} {'>' if strict else '>='} "
                         f"{low:g}; got {value!r}")


def _validate_general(cfg: dict) -> None:
    """Options every model shares, checked before any work starts: ops backend and device that
    can run here, channels, Adam betas, a global batch the torchrun processes can split, and a
    --data that is a bundled name or a folder holding images (CycleGAN checks its own data)."""
    import torch

    from .. import ops

    backend = cfg["backend"]
    report = ops.available_backends()
    if backend not in report:
        raise ValueError(f"--backend must be one of {', '.join(report)}; got {backend!r}")
    if not report[backend]:
        raise ValueError(f"--backend {backend} cannot run here: {report[backend].reason}")
    device = str(cfg["device"])
    try:
        parsed = None if device == "auto" else torch.device(device)
    except RuntimeError:
        parsed = False
    if parsed is False or (parsed is not None and parsed.type not in ("cpu", "cuda")):
        raise ValueError(f"--device must be auto, cpu, cuda or cuda:N; got {device!r}")
    if parsed is not None and parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ValueError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA "
                             "device(s)")
    if cfg.get("channels") not in (None, 1, 3):
        raise ValueError(f"--channels must be 1 or 3 (default: the data set's own); got {cfg['channels']!r}")
    betas = cfg.get("betas")
    if betas is not None and not (isinstance(betas, (list, tuple)) and len(betas) == 2 and all(
            not isinstance(b, bool) and isinstance(b, (int, float)) and 0 <= b < 1 for b in betas)):
        raise ValueError(f"--betas must be two numbers in [0, 1) ('beta1,beta2'); got {betas!r}")
    _number(cfg, "latent_dim", 1, False, int)
    if isinstance(cfg.get("seed"), bool) or not isinstance(cfg.get("seed"), int) or cfg["seed"] < 0:
        raise ValueError(f"--seed must be an integer >= 0; got {cfg.get('seed')!r}")
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    batch = cfg.get("batch_size")
    if batch is not None and world > 1 and batch % world:
        raise ValueError(f"--batch-size {batch} must be divisible by the {world} processes "
                         "(the global minibatch is split evenly over the ranks)")
    if cfg["model"] != "cyclegan":
        _check_data_folder(cfg.get("data"))


def _check_data_folder(data) -> None:
    """A --data that is not a bundled name must be a folder with at least one image file in it
    (found by name; nothing is decoded, so this costs no more than listing the folder)."""
    if data is None:
        return
    from ..data import BUNDLED_NAMES
    from ..data.folder import check_image_folder

    if str(data).strip().lower().replace("_", "-") in BUNDLED_NAMES:
        return
    try:
        check_image_folder(data)
    except FileNotFoundError:
        raise ValueError(f"--data {data!r} is neither a bundled data set ({', '.join(BUNDLED_NAMES)}) "
                         f"nor an existing folder") from None
    except (ValueError, OSError) as e:   # not a folder, or no image file in it or below it
        raise ValueError(f"--data: {e}") from None


def _validate_small_gan(cfg: dict) -> None:
    """gan, dcgan, lsgan, wgan, wgan-gp: the sizes their networks accept and their loss options.

    DCGAN-shaped networks (dcgan, lsgan, wgan, wgan-gp) halve a power-of-two image with 4x4
    stride-2 convolutions down to 4x4, so they need a power of two >= 16; the MLP (gan) takes
    any size. SWD and MS-SSIM need 16x16 images, so below that they cannot pick best.pt."""
    model, r = cfg["model"], cfg["resolution"]
    if model != "gan" and (r < 16 or r & (r - 1)):
        raise ValueError(f"--resolution must be a power of two >= 16 for {model} (its 4x4 "
                         f"stride-2 convolutions halve the image down to 4x4); got {r}")
    _number(cfg, "width", 0, True)
    _number(cfg, "base_channels", 1, False, int)
    _number(cfg, "critic_steps", 1, False, int)
    _number(cfg, "clip", 0, True)
    _number(cfg, "gp_lambda", 0, False)
    if "critic_norm" in cfg and cfg["critic_norm"] not in ("layer", "none"):
        raise ValueError(f"--critic-norm must be layer or none; got {cfg['critic_norm']!r}")
    if r < 16 and cfg["eval_every"] and cfg["best_metric"] in ("swd", "msssim"):
        raise ValueError(f"--best-metric {cfg['best_metric']} needs images of at least 16x16 "
                         f"(--resolution is {r}); choose fid, kid or pr's keys")


def _validate_evaluation(cfg: dict) -> None:
    from ..metrics.evaluate import metric_of, parse_metrics

    every, n = cfg["eval_every"], cfg["eval_n"]
    if isinstance(every, bool) or not isinstance(every, int) or every < 0:
        raise ValueError(f"--eval-every must be a number of images >= 0 (0: off); got {every!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"--eval-n must be an integer >= 2; got {n!r}")
    try:
        names = parse_metrics(cfg["eval_metrics"])
    except ValueError as e:
        raise ValueError(f"--eval-metrics: {e}") from None
    weights = cfg.get("inception_weights")
    if weights and not os.path.isfile(weights):   # say so now, not at the first evaluation
        from ..metrics.features import INCEPTION_HELP

        raise FileNotFoundError(f"--inception-weights: no file {weights}. {INCEPTION_HELP}")
    translation = cfg["model"] == "cyclegan"
    best = cfg["best_metric"]
    needs = metric_of(best, translation)
    if needs is None:
        raise ValueError(f"--best-metric {best!r} is not a result of --eval-metrics "
                         f"{cfg['eval_metrics']!r}")
    if needs != "translation" and needs not in names:
        raise ValueError(f"--best-metric {best} needs '{needs}' in --eval-metrics "
                         f"(got {cfg['eval_metrics']!r})")


def resolve(argv: list[str] | None = None) -> dict:
    """Parse ``argv`` and return the resolved config (see the module docstring for the layers)."""
    args = vars(build_parser().parse_args(argv))
    model = args.pop("model")
    device = args.get("device", "auto")
    if device == "auto":
        import torch
        device = "cuda" if torch.cuda.is_available() else "cpu"
    cfg = preset(model, device.startswith("cuda"), args.get("preset"))
    if args.get("resume"):
        stored = os.path.join(args["resume"], CONFIG_NAME)
        if not os.path.isfile(stored):
            raise FileNotFoundError(f"--resume: {args['resume']} is not a run directory (no {CONFIG_NAME})")
        with open(stored) as f:
            saved = json.load(f)
        if saved.get("model") != model:
            raise ValueError(f"--resume: {args['resume']} is a {saved.get('model')} run, not {model}")
        cfg.update(saved)
    if args.get("config"):
        cfg.update(load_file(args["config"]))
    cfg.update(args)
    cfg["model"] = model
    if cfg.get("resume"):
        cfg["out"] = cfg["resume"]
    elif not cfg.get("out"):
        cfg["out"] = os.path.join("runs", f"{model}-{time.strftime('%Y%m%d-%H%M%S')}")
    return validate(cfg)
