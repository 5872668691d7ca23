"""``pygan.accelerate`` on a GPU: the seeds' ProGAN (WGAN-GP step, a double backward) and CycleGAN
models on the cuda and triton backends, float64 (the maths, to 1e-9) and bf16 autocast (the
everyday setting: the same losses to bf16 rounding). Run by ``scripts/gpu_check.sh``."""

from __future__ import annotations

import copy

import pytest
import torch

import pygan
import seed_models as S
from test_accelerate_seeds import (assert_close, assert_same_grads, cyclegan_expected,
                                   cyclegan_step, grads, progan_expected, progan_step, replaced)

pytestmark = pytest.mark.gpu
GPU_BACKENDS = ["cuda", "triton"]


@pytest.mark.parametrize("backend", GPU_BACKENDS)
@pytest.mark.parametrize("form", ["tutorial", "public"])
def test_progan_seed_on_gpu_float64(backend, form):
    torch.manual_seed(0)
    dev, dtype = torch.device("cuda"), torch.float64
    gen = S.ProGenerator(8, 8, img_size=16, form=form).to(dev, dtype)
    critic = S.ProDiscriminator(16, 8, 8, form=form).to(dev, dtype)
    gen_acc, critic_acc = copy.deepcopy(gen), copy.deepcopy(critic)
    expected_g, expected_d = progan_expected(form, blocks=3)
    assert replaced(pygan.accelerate(gen_acc, backend=backend)) == expected_g
    assert replaced(pygan.accelerate(critic_acc, backend=backend)) == expected_d
    noise = torch.randn(4, 8, 1, 1, device=dev, dtype=dtype)
    real = torch.rand(4, 3, 16, 16, device=dev, dtype=dtype) * 2 - 1
    beta = torch.rand(4, 1, 1, 1, device=dev, dtype=dtype)
    fake, loss_c, loss_g = progan_step(gen, critic, noise, real, beta, 0.37, 2)
    fake_a, loss_c_a, loss_g_a = progan_step(gen_acc, critic_acc, noise, real, beta, 0.37, 2)
    assert_close(fake_a, fake, dtype, "generator output")
    assert_same_grads(grads(loss_c_a, critic_acc), grads(loss_c, critic), critic, dtype, "critic")
    assert_same_grads(grads(loss_g_a, gen_acc), grads(loss_g, gen), gen, dtype, "generator")


@pytest.mark.parametrize("backend", GPU_BACKENDS)
def test_progan_seed_on_gpu_bf16_autocast(backend):
    torch.manual_seed(0)
    dev = torch.device("cuda")
    gen, critic = S.ProGenerator(32, 32, img_size=32).to(dev), S.ProDiscriminator(32, 32, 32).to(dev)
    gen_acc, critic_acc = copy.deepcopy(gen), copy.deepcopy(critic)
    assert len(pygan.accelerate(gen_acc, backend=backend)) > 0
    assert len(pygan.accelerate(critic_acc, backend=backend)) > 0
    noise = torch.randn(8, 32, 1, 1, device=dev)
    real = torch.rand(8, 3, 32, 32, device=dev) * 2 - 1
    beta = torch.rand(8, 1, 1, 1, device=dev)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        fake, loss_c, _ = progan_step(gen, critic, noise, real, beta, 0.5, 3)
        fake_a, loss_c_a, _ = progan_step(gen_acc, critic_acc, noise, real, beta, 0.5, 3)
    # bf16 has 8 significant bits; both sides round differently at every layer.
    torch.testing.assert_close(fake_a.float(), fake.float(), rtol=0.05, atol=0.05)
    torch.testing.assert_close(loss_c_a.float(), loss_c.float(), rtol=0.1, atol=0.1)


@pytest.mark.parametrize("backend", GPU_BACKENDS)
def test_cyclegan_seed_on_gpu_float64(backend):
    torch.manual_seed(0)
    dev, dtype = torch.device("cuda"), torch.float64
    nets = [S.GeneratorResNet((3, 32, 32), 2, ngf=8).to(dev, dtype) for _ in range(2)]
    nets += [S.CycleDiscriminator((3, 32, 32), ndf=8).to(dev, dtype) for _ in range(2)]
    accs = [copy.deepcopy(n) for n in nets]
    reports = [pygan.accelerate(a, backend=backend) for a in accs]
    expected_g, expected_d = cyclegan_expected(2)
    assert replaced(reports[0]) == expected_g and replaced(reports[2]) == expected_d
    real_A = torch.rand(1, 3, 32, 32, device=dev, dtype=dtype) * 2 - 1
    real_B = torch.rand(1, 3, 32, 32, device=dev, dtype=dtype) * 2 - 1
    fake, loss_G, loss_D = cyclegan_step(*nets, real_A, real_B)
    fake_a, loss_G_a, loss_D_a = cyclegan_step(*accs, real_A, real_B)
    assert_close(fake_a, fake, dtype, "G_AB output")
    assert_same_grads(grads(loss_G_a, accs[0]), grads(loss_G, nets[0]), nets[0], dtype, "G_AB")
    assert_same_grads(grads(loss_D_a, accs[2]), grads(loss_D, nets[2]), nets[2], dtype, "D_A")
