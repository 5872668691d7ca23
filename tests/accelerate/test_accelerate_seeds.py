"""``pygan.accelerate`` on the seeds' own models (``seed_models.py``, plain torch as the tutorials
write them): the accelerated copy computes the same forward outputs and the same parameter
gradients of one training step of the seed's own recipe (with its gradient penalty where it has
one), and the report names exactly the replacements expected.

float64 holds the maths to 1e-9 relative (every difference is rounding); float32 is the
everyday check.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

import pygan
import seed_models as S

BACKENDS = [pytest.param("cpp", id="cpp"), pytest.param("triton", id="triton"),
            pytest.param("reference", id="reference")]
TOL = {torch.float64: 1e-9, torch.float32: 2e-4}
FLOOR = {torch.float64: 1e-6, torch.float32: 1e-2}


def assert_close(actual, expected, dtype, what, floor=1e-12):
    scale = max(float(expected.detach().abs().max()), floor)
    err = float((actual - expected).detach().abs().max()) / scale
    assert err <= TOL[dtype], f"{what}: relative error {err:.3e} > {TOL[dtype]:g}"


def grads(loss, model):
    return torch.autograd.grad(loss, list(model.parameters()), allow_unused=True,
                               retain_graph=True)


def assert_same_grads(g_acc, g_ref, model, dtype, what):
    """Per tensor, relative to its own largest value, with a floor of FLOOR of the model's largest
    gradient: a convolution bias feeding an instance norm has a true gradient of exactly 0, so
    both sides are rounding noise there (~1e-16 in float64) and only an absolute bound is fair."""
    names = [n for n, _ in model.named_parameters()]
    assert len(g_acc) == len(g_ref) == len(names)
    floor = FLOOR[dtype] * max(float(r.abs().max()) for r in g_ref if r is not None)
    for name, a, r in zip(names, g_acc, g_ref):
        assert (a is None) == (r is None), f"{what} {name}: gradient presence differs"
        if r is not None:
            assert_close(a, r, dtype, f"{what} {name}", floor=floor)


def accelerated(model, backend):
    acc = copy.deepcopy(model)
    report = pygan.accelerate(acc, backend=backend)
    return acc, report


def replaced(report):
    return {r.path for r in report.replaced}


# ---- seed 000: ProGAN with the WGAN-GP step of its train_fn -----------------------------------

def progan_expected(form, blocks):
    g = {f"prog_blocks.{i}.{m}" for i in range(blocks) for m in ("conv1", "conv2", "leaky", "pn")}
    g |= {f"rgb_layers.{i}" for i in range(blocks)} | {"fade_in()"}
    g |= ({"initial.0", "initial.1", "initial.2"} if form == "tutorial"
          else {f"initial.{i}" for i in range(6)})
    d = {f"prog_blocks.{i}.{m}" for i in range(blocks) for m in ("conv1", "conv2", "leaky", "pn")}
    d |= {f"rgb_layers.{i}" for i in range(blocks)} | {"conv", "minibatch_std()", "fade_in()"}
    return g, d


def seed_gradient_penalty(critic, real, fake, alpha, train_step, beta):
    """The seed's gradient_penalty with its random beta passed in."""
    interpolated_images = real * beta + fake * (1 - beta)
    mixed_scores = critic(interpolated_images, alpha, train_step)
    gradient = torch.autograd.grad(inputs=interpolated_images, outputs=mixed_scores,
                                   grad_outputs=torch.ones_like(mixed_scores),
                                   create_graph=True, retain_graph=True)[0]
    gradient = gradient.view(gradient.shape[0], -1)
    gradient_norm = gradient.norm(2, dim=1)
    return torch.mean((gradient_norm - 1) ** 2)


def progan_step(gen, critic, noise, real, beta, alpha, steps, lambda_gp=10.0):
    fake = gen(noise, alpha, steps)
    critic_real = critic(real, alpha, steps).reshape(-1)
    critic_fake = critic(fake, alpha, steps).reshape(-1)
    gp = seed_gradient_penalty(critic, real, fake, alpha, steps, beta)
    loss_critic = -(torch.mean(critic_real) - torch.mean(critic_fake)) + lambda_gp * gp
    loss_gen = -torch.mean(critic(fake, alpha, steps).reshape(-1))
    return fake, loss_critic, loss_gen


@pytest.mark.parametrize("form", ["tutorial", "public"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_progan_seed(form, backend, dtype):
    if backend == "triton" and dtype == torch.float32:
        pytest.skip("float64 covers the Triton backend; its interpreter is slow on the CPU")
    torch.manual_seed(0)
    z_dim, channels, size, steps, batch = 8, 8, 16, 2, 4
    gen = S.ProGenerator(z_dim, channels, img_size=size, form=form).to(dtype)
    critic = S.ProDiscriminator(size, z_dim, channels, form=form).to(dtype)
    gen_acc, g_report = accelerated(gen, backend)
    critic_acc, d_report = accelerated(critic, backend)
    expected_g, expected_d = progan_expected(form, blocks=3)
    assert replaced(g_report) == expected_g, str(g_report)
    assert replaced(d_report) == expected_d, str(d_report)
    assert "linear" not in replaced(d_report)

    noise = torch.randn(batch, z_dim, 1, 1, dtype=dtype)
    real = torch.rand(batch, 3, size, size, dtype=dtype) * 2 - 1
    beta = torch.rand(batch, 1, 1, 1, dtype=dtype)
    for alpha, s in ((0.37, steps), (1.0, steps), (0.5, 0)):
        r = real if s == steps else F.avg_pool2d(real, 4)
        fake, loss_c, loss_g = progan_step(gen, critic, noise, r, beta, alpha, s)
        fake_a, loss_c_a, loss_g_a = progan_step(gen_acc, critic_acc, noise, r, beta, alpha, s)
        assert_close(fake_a, fake, dtype, f"generator output, steps={s}")
        assert_close(loss_c_a, loss_c, dtype, "critic loss")
        assert_same_grads(grads(loss_c_a, critic_acc), grads(loss_c, critic), critic, dtype,
                          f"critic (WGAN-GP, steps={s})")
        assert_same_grads(grads(loss_g_a, gen_acc), grads(loss_g, gen), gen, dtype,
                          f"generator (steps={s})")


# ---- seed 001: CycleGAN ---------------------------------------------------------------------------

def cyclegan_step(G_AB, G_BA, D_A, D_B, real_A, real_B):
    """The seed's generator and discriminator losses (MSE GAN loss, L1 cycle x10, identity x5)."""
    mse, l1 = torch.nn.MSELoss(), torch.nn.L1Loss()
    loss_identity = (l1(G_BA(real_A), real_A) + l1(G_AB(real_B), real_B)) / 2
    fake_B, fake_A = G_AB(real_A), G_BA(real_B)
    pred_B, pred_A = D_B(fake_B), D_A(fake_A)
    loss_GAN = (mse(pred_B, torch.ones_like(pred_B)) + mse(pred_A, torch.ones_like(pred_A))) / 2
    loss_cycle = (l1(G_BA(fake_B), real_A) + l1(G_AB(fake_A), real_B)) / 2
    loss_G = loss_GAN + 10.0 * loss_cycle + 5.0 * loss_identity
    real_pred, fake_pred = D_A(real_A), D_A(fake_A.detach())
    loss_D_A = (mse(real_pred, torch.ones_like(real_pred))
                + mse(fake_pred, torch.zeros_like(fake_pred))) / 2
    return fake_B, loss_G, loss_D_A


def cyclegan_expected(blocks):
    g = {"model.2", "model.3", "model.5", "model.6", "model.8", "model.9"}
    for b in range(blocks):
        g |= {f"model.{10 + b}.block.2", f"model.{10 + b}.block.3", f"model.{10 + b}.block.6"}
    up = 10 + blocks
    g |= {f"model.{up + 2}", f"model.{up + 3}", f"model.{up + 6}", f"model.{up + 7}"}
    d = {"model.0", "model.1", "model.3", "model.4", "model.6", "model.7", "model.9", "model.10"}
    return g, d


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_cyclegan_seed(backend, dtype):
    if backend == "triton" and dtype == torch.float32:
        pytest.skip("float64 covers the Triton backend; its interpreter is slow on the CPU")
    torch.manual_seed(0)
    size, blocks = 32, 2
    nets = [S.GeneratorResNet((3, size, size), blocks, ngf=4).to(dtype) for _ in range(2)]
    nets += [S.CycleDiscriminator((3, size, size), ndf=4).to(dtype) for _ in range(2)]
    accs, reports = zip(*(accelerated(n, backend) for n in nets))
    expected_g, expected_d = cyclegan_expected(blocks)
    assert replaced(reports[0]) == expected_g, str(reports[0])
    assert replaced(reports[2]) == expected_d, str(reports[2])
    real_A = torch.rand(1, 3, size, size, dtype=dtype) * 2 - 1
    real_B = torch.rand(1, 3, size, size, dtype=dtype) * 2 - 1
    fake, loss_G, loss_D = cyclegan_step(*nets, real_A, real_B)
    fake_a, loss_G_a, loss_D_a = cyclegan_step(*accs, real_A, real_B)
    assert_close(fake_a, fake, dtype, "G_AB output")
    assert_close(loss_G_a, loss_G, dtype, "generator loss")
    for i in (0, 1):
        assert_same_grads(grads(loss_G_a, accs[i]), grads(loss_G, nets[i]), nets[i], dtype,
                          f"generator {i}")
    assert_same_grads(grads(loss_D_a, accs[2]), grads(loss_D, nets[2]), nets[2], dtype, "D_A")


# ---- seed 002: WGAN-GP MLPs ---------------------------------------------------------------------

def wgan_gp_step(gen, disc, real, noise, alpha):
    """Seed 002's WGAN-GP step: its cal_gradient_penalty weighted by 0.1, as the seed does."""
    fake = gen(noise)
    interpolates = (alpha * real + (1 - alpha) * fake.detach()).requires_grad_(True)
    d_interp = disc(interpolates)
    gradients = torch.autograd.grad(outputs=d_interp, inputs=interpolates,
                                    grad_outputs=torch.ones_like(d_interp), create_graph=True,
                                    retain_graph=True, only_inputs=True)[0]
    gp = ((gradients.norm(2, dim=1) - 1) ** 2).mean()
    loss_d = -(disc(real).mean() - disc(fake.detach()).mean()) + gp * 0.1
    loss_g = -disc(fake).mean()
    return fake, loss_d, loss_g


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_wgan_gp_seed(backend, dtype):
    torch.manual_seed(0)
    gen, disc = S.WGenerator(8, 16, 12).to(dtype), S.WDiscriminator(12, 16, wgan=True).to(dtype)
    gen_acc, g_report = accelerated(gen, backend)
    disc_acc, d_report = accelerated(disc, backend)
    assert replaced(g_report) == {f"gen.{i}" for i in range(6)}, str(g_report)
    assert replaced(d_report) == {f"disc.{i}" for i in range(6)}, str(d_report)
    real, noise = torch.randn(6, 12, dtype=dtype), torch.randn(6, 8, dtype=dtype)
    alpha = torch.rand(6, 1, dtype=dtype).expand(6, 12)
    fake, loss_d, loss_g = wgan_gp_step(gen, disc, real, noise, alpha)
    fake_a, loss_d_a, loss_g_a = wgan_gp_step(gen_acc, disc_acc, real, noise, alpha)
    assert_close(fake_a, fake, dtype, "generator output")
    assert_same_grads(grads(loss_d_a, disc_acc), grads(loss_d, disc), disc, dtype, "critic (GP)")
    assert_same_grads(grads(loss_g_a, gen_acc), grads(loss_g, gen), gen, dtype, "generator")


# ---- seed 004: MLP GAN ----------------------------------------------------------------------------

def mlp_gan_step(gen, disc, real, noise):
    criterion = torch.nn.BCEWithLogitsLoss()
    fake = gen(noise)
    fake_pred, real_pred = disc(fake.detach()), disc(real)
    disc_loss = (criterion(fake_pred, torch.zeros_like(fake_pred))
                 + criterion(real_pred, torch.ones_like(real_pred))) / 2
    gen_pred = disc(fake)
    gen_loss = criterion(gen_pred, torch.ones_like(gen_pred))
    return fake, disc_loss, gen_loss


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_mlp_gan_seed(backend, dtype):
    torch.manual_seed(0)
    gen, disc = S.MLPGenerator(10, 20, 8).to(dtype), S.MLPDiscriminator(20, 8).to(dtype)
    gen_acc, g_report = accelerated(gen, backend)
    disc_acc, d_report = accelerated(disc, backend)
    # Each generator ReLU follows a BatchNorm1d: nothing pygan fuses, and the report says so.
    assert replaced(g_report) == set(), str(g_report)
    assert all("follows BatchNorm1d" in r.reason for r in g_report.left_alone), str(g_report)
    assert len(g_report.left_alone) == 4
    assert replaced(d_report) == {f"disc.{i}.{j}" for i in range(3) for j in range(2)}
    real, noise = torch.rand(6, 20, dtype=dtype), torch.randn(6, 10, dtype=dtype)
    fake, loss_d, loss_g = mlp_gan_step(gen, disc, real, noise)
    fake_a, loss_d_a, loss_g_a = mlp_gan_step(gen_acc, disc_acc, real, noise)
    assert_close(fake_a, fake, dtype, "generator output")
    assert_same_grads(grads(loss_d_a, disc_acc), grads(loss_d, disc), disc, dtype, "disc")
    assert_same_grads(grads(loss_g_a, gen_acc), grads(loss_g, gen), gen, dtype, "generator")
