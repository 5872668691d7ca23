"""pygan.losses against hand-computed values, and the gradient penalty's per-sample
interpolation, graph, mixed-precision behaviour and backends."""

import math

import pytest
import torch
from torch import nn

import pygan.losses as L
import pygan.ops as ops

F64 = torch.float64
LN2 = math.log(2.0)


def t(*values):
    return torch.tensor(values, dtype=F64)


# --- hand-computed values --------------------------------------------------------------------

def test_bce_discriminator_loss_by_hand():
    # softplus(-0) = ln 2; softplus(-ln 3) = ln(4/3); softplus(0) = ln 2; softplus(ln 3) = ln 4
    real, fake = t(0.0, math.log(3.0)), t(0.0, math.log(3.0))
    expected = (LN2 + math.log(4 / 3)) / 2 + (LN2 + math.log(4.0)) / 2
    assert L.bce_discriminator_loss(real, fake).item() == pytest.approx(expected, rel=1e-14)
    # label smoothing 0.9 on a logit of 0: -(0.9 log 0.5 + 0.1 log 0.5) = ln 2 for any label
    assert L.bce_discriminator_loss(t(0.0), t(-50.0), real_label=0.9).item() == pytest.approx(
        LN2 + math.log1p(math.exp(-50.0)), rel=1e-14)
    # smoothing with a non-zero logit: -(0.9 log s(2) + 0.1 log(1 - s(2)))
    s = 1 / (1 + math.exp(-2.0))
    assert L.bce_discriminator_loss(t(2.0), t(-60.0), real_label=0.9).item() == pytest.approx(
        -(0.9 * math.log(s) + 0.1 * math.log(1 - s)) + math.log1p(math.exp(-60.0)), rel=1e-12)


def test_nonsaturating_generator_loss_by_hand():
    fake = t(0.0, math.log(3.0), -math.log(3.0))   # -log sigmoid: ln 2, ln(4/3), ln 4
    expected = (LN2 + math.log(4 / 3) + math.log(4.0)) / 3
    assert L.nonsaturating_generator_loss(fake).item() == pytest.approx(expected, rel=1e-14)
    # stable for large logits where a naive log(sigmoid) would give inf
    assert L.nonsaturating_generator_loss(t(-1000.0)).item() == pytest.approx(1000.0, rel=1e-14)


def test_lsgan_losses_by_hand():
    real, fake = t(1.5, 0.5), t(0.0, 2.0)
    # 1/2 mean((D(x) - 1)^2) + 1/2 mean((D(G(z)) - 0)^2) = 1/2 * 0.25 + 1/2 * 2
    assert L.lsgan_discriminator_loss(real, fake).item() == pytest.approx(0.125 + 1.0, rel=1e-14)
    # labels a = -1, b = 1: 1/2 * 0.25 + 1/2 mean(1, 9)
    assert L.lsgan_discriminator_loss(real, fake, real_label=1.0, fake_label=-1.0).item() == pytest.approx(
        0.125 + 2.5, rel=1e-14)
    # 1/2 mean((D(G(z)) - 1)^2) = 1/2 mean(1, 1)
    assert L.lsgan_generator_loss(fake).item() == pytest.approx(0.5, rel=1e-14)
    assert L.lsgan_generator_loss(fake, target_label=0.0).item() == pytest.approx(1.0, rel=1e-14)


def test_wgan_losses_by_hand():
    real, fake = t(3.0, 1.0), t(-1.0, 0.0, 4.0)
    assert L.wgan_critic_loss(real, fake).item() == pytest.approx(1.0 - 2.0, rel=1e-14)
    assert L.wgan_generator_loss(fake).item() == pytest.approx(-1.0, rel=1e-14)


def test_losses_average_over_all_score_elements():
    patch = torch.zeros(2, 1, 3, 3, dtype=F64)
    patch[0] = 2.0    # PatchGAN-shaped scores: mean over N and the patch grid
    assert L.lsgan_generator_loss(patch).item() == pytest.approx(0.5 * (9 * 1 + 9 * 1) / 18, rel=1e-14)
    assert L.wgan_generator_loss(patch).item() == pytest.approx(-1.0, rel=1e-14)


def test_drift_penalty_by_hand():
    assert L.drift_penalty(t(1.0, -3.0)).item() == pytest.approx(0.001 * 5.0, rel=1e-14)
    assert L.drift_penalty(t(2.0), epsilon=0.5).item() == pytest.approx(2.0, rel=1e-14)


def test_clip_weights_clamps_every_parameter():
    critic = nn.Sequential(nn.Linear(3, 4), nn.GroupNorm(1, 4))
    with torch.no_grad():
        for p in critic.parameters():
            p.copy_(torch.linspace(-1, 1, p.numel()).view_as(p))
    L.clip_weights_(critic, 0.01)
    for p in critic.parameters():
        assert p.abs().max().item() == pytest.approx(0.01)
        assert p.min().item() == pytest.approx(-0.01) and p.max().item() == pytest.approx(0.01)


# --- gradient penalty and R1 -------------------------------------------------------------------

class LinearCritic(nn.Module):
    """critic(x) = <w, x> + b per sample: its input gradient is w for every sample."""

    def __init__(self, shape):
        super().__init__()
        self.w = nn.Parameter(torch.randn(shape, dtype=F64))
        self.b = nn.Parameter(torch.zeros((), dtype=F64))
        self.seen = None

    def forward(self, x, scale=1.0, *, shift=0.0):
        self.seen = x.detach().clone()
        return (x * self.w).flatten(1).sum(dim=1, keepdim=True) * scale + self.b + shift


def test_gradient_penalty_by_hand_for_a_linear_critic():
    critic = LinearCritic((2, 3, 3))
    real, fake = torch.randn(5, 2, 3, 3, dtype=F64), torch.randn(5, 2, 3, 3, dtype=F64)
    norm = critic.w.detach().norm().item()
    assert L.gradient_penalty(critic, real, fake).item() == pytest.approx((norm - 1) ** 2, rel=1e-12)
    # extra critic arguments pass through: scale 3 makes the gradient 3w
    got = L.gradient_penalty(critic, real, fake, 3.0, shift=1.0, target=2.0).item()
    assert got == pytest.approx((3 * norm - 2) ** 2, rel=1e-12)
    # its parameter gradient, by hand: d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||
    (g,) = torch.autograd.grad(L.gradient_penalty(critic, real, fake), [critic.w])
    torch.testing.assert_close(g, 2 * (norm - 1) * critic.w.detach() / norm, rtol=1e-12, atol=1e-12)


def test_gradient_penalty_interpolates_with_one_coefficient_per_sample():
    critic = LinearCritic((3, 8, 8))
    real, fake = torch.randn(16, 3, 8, 8, dtype=F64), torch.randn(16, 3, 8, 8, dtype=F64)
    L.gradient_penalty(critic, real, fake)
    coefficient = (critic.seen - fake) / (real - fake)          # x_hat = e real + (1 - e) fake
    per_sample = coefficient.flatten(1)
    # one e per sample: every pixel and channel of a sample shares it ...
    torch.testing.assert_close(per_sample, per_sample[:, :1].expand_as(per_sample), rtol=1e-9, atol=1e-9)
    e = per_sample[:, 0]
    # ... the samples do not share one, and every e lies in [0, 1]
    assert e.unique().numel() == 16
    assert (e >= 0).all() and (e <= 1).all()


def test_gradient_penalty_trains_only_the_critic():
    g = nn.Linear(4, 2 * 3 * 3).double()
    critic = LinearCritic((2, 3, 3))
    fake = g(torch.randn(5, 4, dtype=F64)).view(5, 2, 3, 3)
    real = torch.randn(5, 2, 3, 3, dtype=F64)
    L.gradient_penalty(critic, real, fake).backward()
    assert g.weight.grad is None and g.bias.grad is None
    assert critic.w.grad is not None and critic.w.grad.abs().sum() > 0


def test_r1_penalty_by_hand():
    # critic(x) = 1/2 sum(x^2) per sample: grad = x, so R1 = mean_n ||x_n||^2
    critic = lambda x, k=1.0: 0.5 * k * x.flatten(1).square().sum(dim=1)  # noqa: E731
    real = torch.randn(6, 2, 4, 4, dtype=F64)
    expected = real.flatten(1).square().sum(dim=1).mean().item()
    assert L.r1_penalty(critic, real).item() == pytest.approx(expected, rel=1e-12)
    assert L.r1_penalty(critic, real, 2.0).item() == pytest.approx(4 * expected, rel=1e-12)


@pytest.mark.parametrize("backend", ["reference", "cpp"])
def test_penalties_under_each_backend_match_hand_values(backend):
    status = ops.available_backends()[backend]
    if not status.available:
        pytest.skip(f"{backend} backend unavailable: " + status.reason)
    critic = LinearCritic((2, 3, 3))
    real, fake = torch.randn(4, 2, 3, 3, dtype=F64), torch.randn(4, 2, 3, 3, dtype=F64)
    norm = critic.w.detach().norm().item()
    with ops.use_backend(backend):
        gp = L.gradient_penalty(critic, real, fake)
        r1 = L.r1_penalty(critic, real)
        (g,) = torch.autograd.grad(gp, [critic.w])
    assert gp.item() == pytest.approx((norm - 1) ** 2, rel=1e-12)
    assert r1.item() == pytest.approx(norm**2, rel=1e-12)
    torch.testing.assert_close(g, 2 * (norm - 1) * critic.w.detach() / norm, rtol=1e-12, atol=1e-12)


class SmallConvCritic(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Linear(8, 1)

    def forward(self, x):
        return self.head(torch.tanh(self.conv(x)).mean(dim=(2, 3)))


def test_fp16_autocast_with_grad_scaler_penalises_unscaled_gradients():
    """Small critic outputs (x 2^-14) give input gradients that underflow in float16's backward:
    without a scaler the penalty is far off; with the GradScaler at its default 2^16 it is the
    float32 value, so the gradients were scaled for the backward and unscaled for the penalty."""
    torch.manual_seed(0)
    net = SmallConvCritic()
    critic = lambda x: net(x) * 2.0**-14  # noqa: E731
    real, fake = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    scaler = torch.amp.GradScaler("cpu")
    for target in (0.0, 1.0):
        values = {}
        for name, use_scaler in [("scaled", scaler), ("unscaled", None), ("float32", None)]:
            torch.manual_seed(1)                                   # the same coefficients
            with torch.autocast("cpu", dtype=torch.float16, enabled=name != "float32"):
                values[name] = L.gradient_penalty(critic, real, fake, target=target, scaler=use_scaler)
        # within 4 float16 ulps of the float32 penalty
        torch.testing.assert_close(values["scaled"], values["float32"], rtol=4e-3, atol=0)
        if target == 0.0:   # mean ||g||^2: the underflow without a scaler shows plainly
            rel = abs(values["unscaled"].item() / values["float32"].item() - 1)
            assert rel > 0.1, f"float16 without a scaler was expected to underflow; error {rel:.3g}"
    # the scaled penalty backpropagates into the critic's parameters, finite
    scaler.scale(values["scaled"]).backward()
    for name in ("conv.weight", "conv.bias", "head.weight"):   # head.bias does not move the gradient
        grad = net.get_parameter(name).grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def test_r1_penalty_with_grad_scaler():
    torch.manual_seed(0)
    net = SmallConvCritic()
    critic = lambda x: net(x) * 2.0**-14  # noqa: E731
    real = torch.randn(4, 3, 8, 8)
    with torch.autocast("cpu", dtype=torch.float16):
        scaled = L.r1_penalty(critic, real, scaler=torch.amp.GradScaler("cpu"))
    torch.testing.assert_close(scaled, L.r1_penalty(critic, real), rtol=4e-3, atol=0)


def test_bf16_autocast_needs_no_scaler():
    """bfloat16 has float32's exponent range: the same tiny gradients do not underflow."""
    torch.manual_seed(0)
    net = SmallConvCritic()
    critic = lambda x: net(x) * 2.0**-14  # noqa: E731
    real, fake = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    values = []
    for enabled in (True, False):
        torch.manual_seed(1)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
            values.append(L.gradient_penalty(critic, real, fake, target=0.0))
    # within 4 bfloat16 ulps (2^-8 each) of the float32 penalty
    torch.testing.assert_close(values[0], values[1], rtol=4 * 2.0**-8, atol=0)


# --- argument checks ---------------------------------------------------------------------------

def test_bad_arguments_are_named():
    critic = LinearCritic((2,))
    with pytest.raises(ValueError, match="real and fake must have the same shape"):
        L.gradient_penalty(critic, torch.randn(3, 2), torch.randn(4, 2))
    with pytest.raises(TypeError, match="critic must be callable"):
        L.gradient_penalty("critic", torch.randn(3, 2), torch.randn(3, 2))
    with pytest.raises(TypeError, match="scaler must be a torch.amp.GradScaler"):
        L.r1_penalty(critic, torch.randn(3, 2), scaler=2.0)
    with pytest.raises(TypeError, match="real must be a floating-point"):
        L.r1_penalty(critic, torch.ones(3, 2, dtype=torch.long))
    with pytest.raises(TypeError, match="fake_scores must be a torch.Tensor"):
        L.wgan_generator_loss([1.0])
    with pytest.raises(ValueError, match="real_scores must hold at least one score"):
        L.bce_discriminator_loss(torch.zeros(0), torch.zeros(2))
    with pytest.raises(ValueError, match="clip_value must be > 0"):
        L.clip_weights_(critic, 0.0)
    with pytest.raises(ValueError, match="epsilon must be >= 0"):
        L.drift_penalty(torch.ones(2), epsilon=-1.0)
