"""End to end: one ProGAN training step (critic step with WGAN-GP + drift, then generator step)
per resolution, fused backends vs the eager reference vs torch.compile.

    python -m benchmarks.e2e.bench_progan_step --device cuda --save          # paper widths, 4..256
    python -m benchmarks.e2e.bench_progan_step --device cpu --max-resolution 32 --fmap-base 512

Providers: ``reference`` (every op in plain PyTorch, eager), the fused backends that run on the
device (``cpp`` / ``cuda`` / ``triton``), and ``compile``: torch.compile of the reference
networks. torch.compile cannot differentiate twice, so under ``compile`` the gradient-penalty
term runs the eager reference networks and only the plain critic and generator passes are
compiled: "compiled where it can run". Reported: images per second (the batch over the time of
both steps, ``triton.testing.do_bench`` medians on a GPU) and peak device memory.
"""

from __future__ import annotations

import math

import torch

import pygan.ops as ops
from benchmarks.e2e._step import (DTYPES, add_ratios, add_repeat, default_providers, parser, run_and_save,
                                time_providers)
from pygan import losses
from pygan.models import progan

# ProGAN's minibatch per resolution (paper, appendix A.1: 16 up to 128^2, then smaller)
PAPER_BATCH = {4: 16, 8: 16, 16: 16, 32: 16, 64: 16, 128: 16, 256: 14, 512: 6, 1024: 3}


def make_step(G, D, Gc, Dc, batch, steps, device, dtype, channels_last, backend):
    """A closure running one critic step and one generator step (grads only; no optimiser)."""
    res = 4 * 2 ** steps
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    real = torch.randn(batch, 3, res, res, device=device).contiguous(memory_format=fmt)
    z = torch.randn(batch, G.latent_dim, device=device)
    alpha = 0.5
    autocast = torch.autocast(device_type=torch.device(device).type, dtype=dtype, enabled=dtype != torch.float32)
    d_params, g_params = list(D.parameters()), list(G.parameters())

    def step():
        with ops.use_backend(backend), autocast:
            fake = Gc(z, alpha, steps).detach().contiguous(memory_format=fmt)
            real_scores, fake_scores = Dc(real, alpha, steps), Dc(fake, alpha, steps)
            penalty = losses.gradient_penalty(D, real, fake, alpha, steps)   # eager: double backward
            d_loss = losses.wgan_critic_loss(real_scores, fake_scores) + 10 * penalty \
                + losses.drift_penalty(real_scores)
            torch.autograd.grad(d_loss, d_params, allow_unused=True)
            g_loss = losses.wgan_generator_loss(Dc(Gc(z, alpha, steps), alpha, steps))
            torch.autograd.grad(g_loss, g_params, allow_unused=True)
    return step


def run(args, progress=lambda rows: None) -> list[dict]:
    device = torch.device(args.device)
    providers = args.provider or default_providers(device)
    dtype = DTYPES[args.dtype]
    G = progan.Generator(args.max_resolution, min(512, args.fmap_base), 3, args.fmap_base, args.fmap_max).to(device)
    D = progan.Discriminator(args.max_resolution, min(512, args.fmap_base), 3, args.fmap_base, args.fmap_max).to(device)
    if args.channels_last:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    Gc, Dc = torch.compile(G), torch.compile(D)
    rows = []
    for steps in range(int(math.log2(args.max_resolution)) - 1):
        res = 4 * 2 ** steps
        batch = args.batch or PAPER_BATCH[res]

        def step_for(p, steps=steps, batch=batch):
            g, d = (Gc, Dc) if p == "compile" else (G, D)
            return make_step(G, D, g, d, batch, steps, device, dtype, args.channels_last,
                             "reference" if p == "compile" else p)
        rows += time_providers(providers, step_for, device, f"{res:>4}^2 batch {batch:>3}", batch,
                               repeat=args.repeat, bench="progan_step", resolution=res, dtype=args.dtype,
                               channels_last=args.channels_last, fmap_base=args.fmap_base,
                               fmap_max=args.fmap_max)
        progress(rows)
    return add_ratios(rows)


def main() -> None:
    p = parser(__doc__)
    add_repeat(p)
    p.add_argument("--max-resolution", type=int, default=256)
    p.add_argument("--fmap-base", type=int, default=8192, help="8192 = paper widths (512 channels up to 32^2)")
    p.add_argument("--fmap-max", type=int, default=512)
    p.add_argument("--batch", type=int, help="default: the paper's minibatch per resolution")
    args = p.parse_args()
    run_and_save("progan_step", lambda progress: run(args, progress), args)


if __name__ == "__main__":
    main()
