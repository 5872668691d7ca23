"""End to end: one training step of each seed tutorial's own model (``tests/accelerate/
seed_models.py``), the original vs the same model after ``pygan.accelerate``.

    python -m benchmarks.e2e.bench_accelerate --save                       # CPU defaults
    python -m benchmarks.e2e.bench_accelerate --device cuda --dtype bfloat16 --save

Models and steps (each the seed's own recipe, with Adam as the seeds use it):

* ``progan``: seed 000's generator and critic (IN_CHANNELS 128, Z_DIM 128), one WGAN-GP critic
  step (lambda 10, the seed's gradient_penalty: a double backward) and one generator step at
  each ``--progan-resolution`` with alpha 0.5 and the seed's batch for that size
  (BATCH_SIZES = 128, 128, 64, 16, 8, 4, ...: 16 at 32^2, 8 at 64^2, 4 at 128^2);
* ``cyclegan``: seed 001's ResNet generators and PatchGAN discriminators (64 filters, 9 residual
  blocks, batch 1), the generator step (MSE GAN + 10 x cycle + 5 x identity L1) and one
  discriminator step, at ``--cyclegan-resolution``;
* ``wgan_gp``: seed 002's MLP generator and critic (noise 100, width 256, 784 outputs, batch 64),
  its WGAN-GP critic step (penalty x 0.1, as the seed) and generator step;
* ``mlp_gan``: seed 004's generator and discriminator (z 64, hidden 128, 784 pixels, batch 128),
  BCE-with-logits discriminator and generator steps.

Providers: ``original`` (the model as written, eager) and ``accelerate:<backend>`` (a deep copy
after ``pygan.accelerate(copy, backend=...)``: ``auto`` on the CPU, i.e. ``accelerate(copy)`` as
a user calls it (cpp kernels; plain Linear + activation chains keep addmm there); cuda and
triton on a GPU).
On a GPU times are ``triton.testing.do_bench`` medians; on the CPU the providers alternate,
one step each, for ``--repeats`` rounds after one warm-up (default 5) and the median is
reported, so a slow drift of the machine hits both alike. ``--dtype bfloat16`` runs the steps
under autocast.
"""

from __future__ import annotations

import copy
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import pygan
import pygan.ops as ops
from benchmarks.e2e._step import DTYPES, parser, run_and_save

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "accelerate"))
import seed_models as S  # noqa: E402

PROGAN_BATCH = {4: 128, 8: 128, 16: 64, 32: 16, 64: 8, 128: 4, 256: 2, 512: 2, 1024: 1}


def _adam(model):
    return torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.0, 0.99))


def progan(res, device, autocast):
    """Seed 000: Generator/Discriminator(IN_CHANNELS=128, Z_DIM=128), its WGAN-GP step."""
    z_dim, channels, steps = 128, 128, int(round(torch.log2(torch.tensor(res / 4)).item()))
    batch = PROGAN_BATCH[res]
    gen = S.ProGenerator(z_dim, channels, img_size=res).to(device)
    critic = S.ProDiscriminator(res, z_dim, channels).to(device)
    real = torch.rand(batch, 3, res, res, device=device) * 2 - 1
    noise = torch.randn(batch, z_dim, 1, 1, device=device)
    beta = torch.rand(batch, 1, 1, 1, device=device)

    def make(gen, critic):
        opt_g, opt_c = _adam(gen), _adam(critic)

        def step():
            with autocast:
                fake = gen(noise, 0.5, steps)
                critic_real = critic(real, 0.5, steps).reshape(-1)
                critic_fake = critic(fake.detach(), 0.5, steps).reshape(-1)
                mixed = (real * beta + fake.detach() * (1 - beta)).requires_grad_(True)
                scores = critic(mixed, 0.5, steps)
                grad = torch.autograd.grad(scores, mixed, torch.ones_like(scores),
                                           create_graph=True)[0]
                gp = ((grad.view(batch, -1).norm(2, dim=1) - 1) ** 2).mean()
                loss_c = -(critic_real.float().mean() - critic_fake.float().mean()) + 10 * gp
            opt_c.zero_grad(set_to_none=True)
            loss_c.backward()
            opt_c.step()
            with autocast:
                loss_g = -critic(fake, 0.5, steps).float().mean()
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
        return step
    return (gen, critic), make, batch


def cyclegan(res, device, autocast):
    """Seed 001: two GeneratorResNet (9 blocks, 64 filters) and two PatchGANs, batch 1."""
    nets = [S.GeneratorResNet((3, res, res), 9).to(device) for _ in range(2)]
    nets += [S.CycleDiscriminator((3, res, res)).to(device) for _ in range(2)]
    real_A = torch.rand(1, 3, res, res, device=device) * 2 - 1
    real_B = torch.rand(1, 3, res, res, device=device) * 2 - 1

    def make(G_AB, G_BA, D_A, D_B):
        opt_g = torch.optim.Adam([*G_AB.parameters(), *G_BA.parameters()], lr=2e-4, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam([*D_A.parameters(), *D_B.parameters()], lr=2e-4, betas=(0.5, 0.999))

        def mse(pred, value):
            return (pred.float() - value).square().mean()

        def l1(a, b):
            return (a.float() - b.float()).abs().mean()

        def step():
            with autocast:
                loss_id = (l1(G_BA(real_A), real_A) + l1(G_AB(real_B), real_B)) / 2
                fake_B, fake_A = G_AB(real_A), G_BA(real_B)
                loss_gan = (mse(D_B(fake_B), 1.0) + mse(D_A(fake_A), 1.0)) / 2
                loss_cycle = (l1(G_BA(fake_B), real_A) + l1(G_AB(fake_A), real_B)) / 2
                loss_g = loss_gan + 10.0 * loss_cycle + 5.0 * loss_id
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            with autocast:
                loss_d = (mse(D_A(real_A), 1.0) + mse(D_A(fake_A.detach()), 0.0)) / 2 \
                    + (mse(D_B(real_B), 1.0) + mse(D_B(fake_B.detach()), 0.0)) / 2
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
        return step
    return tuple(nets), make, 1


def wgan_gp(device, autocast):
    """Seed 002: MLP generator/critic, WGAN-GP with the seed's 0.1 penalty weight."""
    batch = 64
    gen, critic = S.WGenerator(100, 256, 784).to(device), S.WDiscriminator(784, 256, wgan=True).to(device)
    real, noise = torch.rand(batch, 784, device=device), torch.randn(batch, 100, device=device)
    alpha = torch.rand(batch, 1, device=device).expand(batch, 784)

    def make(gen, critic):
        opt_g, opt_c = _adam(gen), _adam(critic)

        def step():
            with autocast:
                fake = gen(noise)
                interp = (alpha * real + (1 - alpha) * fake.detach()).requires_grad_(True)
                d = critic(interp)
                grad = torch.autograd.grad(d, interp, torch.ones_like(d), create_graph=True)[0]
                gp = ((grad.norm(2, dim=1) - 1) ** 2).mean()
                loss_c = -(critic(real).float().mean() - critic(fake.detach()).float().mean()) + 0.1 * gp
            opt_c.zero_grad(set_to_none=True)
            loss_c.backward()
            opt_c.step()
            with autocast:
                loss_g = -critic(fake).float().mean()
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
        return step
    return (gen, critic), make, batch


def mlp_gan(device, autocast):
    """Seed 004: MLP generator (BatchNorm) and discriminator, BCE-with-logits losses."""
    batch = 128
    gen, disc = S.MLPGenerator(64, 784, 128).to(device), S.MLPDiscriminator(784, 128).to(device)
    real, noise = torch.rand(batch, 784, device=device), torch.randn(batch, 64, device=device)

    def make(gen, disc):
        opt_g, opt_d = _adam(gen), _adam(disc)
        ones, zeros = torch.ones(batch, 1, device=device), torch.zeros(batch, 1, device=device)

        def step():
            with autocast:
                fake = gen(noise)
                loss_d = (F.binary_cross_entropy_with_logits(disc(fake.detach()).float(), zeros)
                          + F.binary_cross_entropy_with_logits(disc(real).float(), ones)) / 2
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            with autocast:
                loss_g = F.binary_cross_entropy_with_logits(disc(fake).float(), ones)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
        return step
    return (gen, disc), make, batch


def time_steps(steps: dict, device, repeats: int) -> dict[str, float]:
    """Median seconds per step of each provider (interleaved rounds on the CPU)."""
    if device.type == "cuda":
        import triton.testing
        return {p: triton.testing.do_bench(fn, warmup=5, rep=200, return_mode="median") / 1e3
                for p, fn in steps.items()}
    for fn in steps.values():
        fn()                                               # warm-up
    times = {p: [] for p in steps}
    for _ in range(repeats):
        for p, fn in steps.items():
            t0 = time.perf_counter()
            fn()
            times[p].append(time.perf_counter() - t0)
    return {p: statistics.median(ts) for p, ts in times.items()}


def run(args, progress=lambda rows: None) -> list[dict]:
    device = torch.device(args.device)
    dtype = DTYPES[args.dtype]
    autocast = torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype != torch.float32)
    backends = args.backend or (["auto"] if device.type == "cpu" else ["cuda", "triton"])
    backends = [b for b in backends if b == "auto" or ops.available_backends()[b]]
    cases = []
    for model in args.model or ["progan", "cyclegan", "wgan_gp", "mlp_gan"]:
        if model == "progan":
            cases += [(model, r, lambda r=r: progan(r, device, autocast))
                      for r in args.progan_resolution or ([32, 64, 128] if device.type == "cuda" else [32])]
        elif model == "cyclegan":
            cases += [(model, r, lambda r=r: cyclegan(r, device, autocast))
                      for r in args.cyclegan_resolution or ([256] if device.type == "cuda" else [64])]
        else:
            cases.append((model, None, lambda m=model: globals()[m](device, autocast)))
    rows = []
    for model, res, build in cases:
        torch.manual_seed(0)
        nets, make, batch = build()
        steps = {"original": make(*nets)}
        replaced = {}
        for b in backends:
            copies = [copy.deepcopy(n) for n in nets]
            reports = [pygan.accelerate(c, backend=None if b == "auto" else b) for c in copies]
            replaced[b] = sum(len(r) for r in reports)
            steps[f"accelerate:{b}"] = make(*copies)
        times = time_steps(steps, device, args.repeats)
        label = f"{model}{'' if res is None else f' {res}^2'} batch {batch}"
        line = "  ".join(f"{p} {t * 1e3:9.1f} ms" for p, t in times.items())
        line += "  |  " + "  ".join(f"{p} {times['original'] / t:.3f}x" for p, t in times.items()
                                    if p != "original")
        print(f"{label}: {line}", flush=True)
        for p, t in times.items():
            backend = p.split(":", 1)[1] if ":" in p else None
            rows.append(dict(bench="accelerate", model=model, resolution=res, batch=batch,
                             provider=p, dtype=args.dtype, seconds=t,
                             speedup_vs_original=times["original"] / t,
                             replacements=replaced.get(backend), repeats=args.repeats))
        progress(rows)
    return rows


def main(argv=None) -> None:
    p = parser(__doc__)
    p.add_argument("--model", action="append", choices=["progan", "cyclegan", "wgan_gp", "mlp_gan"])
    p.add_argument("--backend", action="append", choices=["auto", "cpp", "cuda", "triton", "reference"],
                   help="repeatable; default auto (what pygan.accelerate(model) picks) on cpu, "
                        "cuda and triton on a GPU")
    p.add_argument("--progan-resolution", type=int, action="append",
                   help="repeatable; default 32, 64 and 128 on cuda, 32 on cpu")
    p.add_argument("--cyclegan-resolution", type=int, action="append",
                   help="repeatable; default 256 on cuda, 64 on cpu")
    p.add_argument("--repeats", type=int, default=5, help="CPU rounds after one warm-up (median)")
    args = p.parse_args(argv)
    for r in args.progan_resolution or []:
        if r not in PROGAN_BATCH:
            p.error(f"--progan-resolution {r}: must be a power of two from 4 to 1024")
    run_and_save("accelerate", lambda progress: run(args, progress), args)


if __name__ == "__main__":
    main()
