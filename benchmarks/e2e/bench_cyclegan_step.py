"""End to end: one CycleGAN training step (generator step, then discriminator step) per
resolution, fused backends vs the eager reference vs torch.compile.

    python -m benchmarks.e2e.bench_cyclegan_step --device cuda --save     # paper: 128 and 256, 64 filters
    python -m benchmarks.e2e.bench_cyclegan_step --device cpu --resolution 32 --base-channels 8 --num-blocks 1

The step is pygan's (pygan/train/loop_cyclegan.py, Zhu et al. 2017 §3-4) with the same models
(pygan.models.cyclegan: ResNet generators G_AB, G_BA; 70x70 PatchGAN discriminators D_A, D_B) and
losses (pygan.losses, LSGAN), on one batch of random images of each domain:

* generator step: LSGAN adversarial terms mse(D(G(x)), 1) + 10 * cycle L1 + 0.5 * 10 * identity
  L1, gradients w.r.t. the parameters of both generators;
* discriminator step: 0.5 * (mse(D(real), 1) + mse(D(fake), 0)) per discriminator on the
  detached fakes, gradients w.r.t. both discriminators (the authors' code, as the trainer).

Gradients come from ``torch.autograd.grad`` (no optimiser, so nothing but the networks is
timed), and the fakes go to the discriminators directly: the history pool is bookkeeping, not
compute.

Which pygan ops run: ``instance_norm_act`` (every instance norm with its ReLU in the
generators and LeakyReLU(0.2) in the discriminators, and each residual block's last norm with
the block's add fused in) and ``bias_lrelu`` (the discriminator's first activation, which
follows a convolution with no norm). The convolutions are PyTorch's under every provider.

Providers: ``reference`` (every op in plain PyTorch, eager), the fused backends that run on the
device (``cpp`` / ``cuda`` / ``triton``), and ``compile``: torch.compile of the four reference
networks. CycleGAN has no double backward (no gradient penalty), so unlike the ProGAN bench
torch.compile compiles every forward and backward pass of the step; only the few loss
reductions between them stay eager.

Reported: images per second (the batch, i.e. images of each domain, over the time of both steps;
``triton.testing.do_bench`` medians on a GPU) and peak device memory (CUDA only), with the ratios
of both to the reference.
"""

from __future__ import annotations


import torch

import pygan.ops as ops
from benchmarks.e2e._step import (DTYPES, add_ratios, add_repeat, default_providers, parser, run_and_save,
                                time_providers)
from pygan.models import cyclegan

LAMBDA_CYC, LAMBDA_ID = 10.0, 0.5   # the paper's weights; the identity weight is a fraction of LAMBDA_CYC


def make_nets(base_channels, num_blocks, device, channels_last):
    """G_AB, G_BA, D_A, D_B on ``device`` (3-channel images)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    nets = [cyclegan.ResnetGenerator(3, 3, base_channels, num_blocks) for _ in range(2)]
    nets += [cyclegan.PatchDiscriminator(3, base_channels) for _ in range(2)]
    return [n.to(device, memory_format=fmt) for n in nets]


def make_step(nets, run_nets, batch, res, device, dtype, channels_last, backend):
    """A closure running one generator step and one discriminator step (grads only; no optimiser).

    ``nets`` own the parameters; ``run_nets`` are what is called (the same, or compiled)."""
    G_AB, G_BA, D_A, D_B = nets
    g_ab, g_ba, d_a, d_b = run_nets
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    a, b = (torch.rand(batch, 3, res, res, device=device).mul(2).sub(1).contiguous(memory_format=fmt)
            for _ in range(2))
    autocast = torch.autocast(device_type=torch.device(device).type, dtype=dtype, enabled=dtype != torch.float32)
    g_params = [*G_AB.parameters(), *G_BA.parameters()]
    d_params = [*D_A.parameters(), *D_B.parameters()]

    def l1(x, y):
        return (x - y).abs().mean().float()

    def mse(scores, target):
        return (scores.float() - target).square().mean()

    def step():
        with ops.use_backend(backend), autocast:
            fake_b, fake_a = g_ab(a), g_ba(b)
            adv = mse(d_b(fake_b), 1.0) + mse(d_a(fake_a), 1.0)
            cyc = l1(g_ba(fake_b), a) + l1(g_ab(fake_a), b)
            idt = l1(g_ba(a), a) + l1(g_ab(b), b)
            g_loss = adv + LAMBDA_CYC * cyc + LAMBDA_ID * LAMBDA_CYC * idt
            torch.autograd.grad(g_loss, g_params)
            fake_b, fake_a = fake_b.detach(), fake_a.detach()
            d_loss = 0.5 * (mse(d_b(b), 1.0) + mse(d_b(fake_b), 0.0)) \
                + 0.5 * (mse(d_a(a), 1.0) + mse(d_a(fake_a), 0.0))
            torch.autograd.grad(d_loss, d_params)
    return step


def run(args, progress=lambda rows: None) -> list[dict]:
    device = torch.device(args.device)
    providers = args.provider or default_providers(device)
    dtype = DTYPES[args.dtype]
    resolutions = args.resolution or ([128, 256] if device.type == "cuda" else [32, 64])
    base = args.base_channels or (64 if device.type == "cuda" else 16)
    rows = []
    for res in resolutions:
        blocks = args.num_blocks if args.num_blocks is not None else \
            cyclegan.paper_num_blocks(res) if device.type == "cuda" else 3
        batch = args.batch or 1
        nets = make_nets(base, blocks, device, args.channels_last)
        compiled = [torch.compile(n) for n in nets]

        def step_for(p, nets=nets, compiled=compiled, batch=batch, res=res):
            return make_step(nets, compiled if p == "compile" else nets, batch, res, device, dtype,
                             args.channels_last, "reference" if p == "compile" else p)
        rows += time_providers(providers, step_for, device, f"{res:>4}^2 batch {batch:>2} blocks {blocks}",
                               batch, repeat=args.repeat, bench="cyclegan_step", resolution=res, dtype=args.dtype,
                               channels_last=args.channels_last, base_channels=base, num_blocks=blocks)
        progress(rows)
    return add_ratios(rows)


def main(argv=None) -> None:
    p = parser(__doc__)
    add_repeat(p)
    p.add_argument("--resolution", type=int, action="append",
                   help="repeatable, a multiple of 4 and >= 24; default 128 and 256 on cuda, 32 and 64 on cpu")
    p.add_argument("--base-channels", type=int, help="generator and discriminator filters (ngf = ndf); "
                   "default 64 (paper) on cuda, 16 on cpu")
    p.add_argument("--num-blocks", type=int, help="residual blocks; default the paper's (6 below 256^2, "
                   "9 at 256^2) on cuda, 3 on cpu")
    p.add_argument("--batch", type=int, help="default 1 (paper)")
    args = p.parse_args(argv)
    for res in args.resolution or []:
        if res < 24 or res % 4:
            p.error(f"--resolution {res}: must be a multiple of 4 (the generator) and at least 24 "
                    "(the PatchGAN's last instance norm needs more than one pixel)")
    run_and_save("cyclegan_step", lambda progress: run(args, progress), args)


if __name__ == "__main__":
    main()
