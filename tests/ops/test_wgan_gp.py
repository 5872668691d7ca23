"""A WGAN-GP critic step through every op: the parameter gradients of a compiled backend equal
the reference backend's in float64 to 1e-10. This is the test that catches a ``_bwd`` op whose
own derivative is missing or wrong (opcheck alone does not, DESIGN.md §3)."""

import math

import pytest
import torch
import torch.nn.functional as F
from op_harness import BACKEND_PARAMS

import pygan.ops as ops


def make_params(channels=6, img=3, device="cpu"):
    g = torch.Generator().manual_seed(1)
    p = dict(
        w_rgb_hi=torch.randn(channels, img, 1, 1, generator=g, dtype=torch.float64),
        b_rgb_hi=torch.randn(channels, generator=g, dtype=torch.float64) * 0.1,
        w_rgb_lo=torch.randn(channels, img, 1, 1, generator=g, dtype=torch.float64),
        b_rgb_lo=torch.randn(channels, generator=g, dtype=torch.float64) * 0.1,
        w_conv=torch.randn(channels, channels, 3, 3, generator=g, dtype=torch.float64),
        b_conv=torch.randn(channels, generator=g, dtype=torch.float64) * 0.1,
        w_out=torch.randn(channels + 1, generator=g, dtype=torch.float64),
    )
    return {k: v.to(device).requires_grad_() for k, v in p.items()}


def critic(x, p, alpha):
    """fromRGB at two resolutions blended by fade_in, a weight-scaled conv with the fused
    epilogues, pixel norm, minibatch stddev, and a linear head."""
    c_img = x.shape[1]
    hi = F.conv2d(x, p["w_rgb_hi"])
    hi = ops.bias_lrelu(hi, p["b_rgb_hi"], scale=1 / math.sqrt(c_img), gain=math.sqrt(2))
    lo = F.conv2d(F.avg_pool2d(x, 2), p["w_rgb_lo"])
    lo = ops.bias_lrelu(lo, p["b_rgb_lo"], scale=1 / math.sqrt(c_img), gain=math.sqrt(2))
    h = ops.fade_in(lo, hi, alpha)
    h = F.conv2d(h, p["w_conv"], padding=1)
    h = ops.bias_lrelu_pixel_norm(h, p["b_conv"], scale=1 / math.sqrt(9 * h.shape[1]), gain=math.sqrt(2))
    h = ops.pixel_norm(h)
    h = ops.minibatch_std(F.avg_pool2d(h, 2), group_size=2)
    return h.mean(dim=(2, 3)) @ p["w_out"]


def wgan_gp_step(backend, real, fake, mix, memory_format, device="cpu"):
    p = make_params(device=device)
    real = real.contiguous(memory_format=memory_format)
    fake = fake.contiguous(memory_format=memory_format)
    with ops.use_backend(backend):
        x_hat = (mix * real + (1 - mix) * fake).requires_grad_()
        (grad,) = torch.autograd.grad(critic(x_hat, p, 0.3).sum(), x_hat, create_graph=True)
        loss = critic(fake, p, 0.3).mean() - critic(real, p, 0.3).mean() + 10 * ops.gradient_penalty(grad)
        return loss.detach(), torch.autograd.grad(loss, list(p.values()))


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last], ids=str)
def test_wgan_gp_parameter_gradients_match_reference(backend, memory_format):
    real = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    fake = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    mix = torch.rand(4, 1, 1, 1, dtype=torch.float64)
    loss_ref, grads_ref = wgan_gp_step("reference", real, fake, mix, memory_format)
    loss, grads = wgan_gp_step(backend, real, fake, mix, memory_format)
    torch.testing.assert_close(loss, loss_ref, rtol=0, atol=1e-10)
    for name, g, g_ref in zip(make_params(), grads, grads_ref):
        assert g_ref.abs().max() > 0, f"{name}: the reference gradient is zero; the test would be vacuous"
        torch.testing.assert_close(g, g_ref, rtol=0, atol=1e-10, msg=lambda m: f"{name}: {m}")
