"""ProGAN's progressive interface and the paper's architectural rules, checked by behaviour."""

import pytest
import torch
import torch.nn.functional as F

import pygan.nn as pnn
from pygan import losses
from pygan.models import progan

F64 = torch.float64
TINY = dict(resolution=64, latent_dim=8, img_channels=3, fmap_base=64, fmap_max=16)


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    G, D = progan.Generator(**TINY).double(), progan.Discriminator(**TINY).double()
    with torch.no_grad():                       # trained-looking biases
        for net in (G, D):
            for name, p in net.named_parameters():
                if name.endswith("bias"):
                    p.normal_(0.0, 0.1)
    return G, D


@pytest.mark.parametrize("steps", [1, 2, 4])
def test_generator_fades_from_the_upsampled_previous_output(nets, steps):
    G, _ = nets
    z = torch.randn(4, 8, dtype=F64)
    previous = G(z, 1.0, steps - 1)
    upsampled = previous.repeat_interleave(2, 2).repeat_interleave(2, 3)
    torch.testing.assert_close(G(z, 0.0, steps), upsampled, rtol=1e-12, atol=1e-12)
    full = G(z, 1.0, steps)
    torch.testing.assert_close(G(z, 0.25, steps), 0.25 * full + 0.75 * upsampled, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(G(z, torch.tensor(0.25, dtype=F64), steps), G(z, 0.25, steps),
                               rtol=0, atol=0)


@pytest.mark.parametrize("steps", [1, 2, 4])
def test_discriminator_fades_from_the_downsampled_image_through_the_previous_from_rgb(nets, steps):
    _, D = nets
    x = torch.randn(4, 3, 4 * 2**steps, 4 * 2**steps, dtype=F64)
    torch.testing.assert_close(D(x, 0.0, steps), D(F.avg_pool2d(x, 2), 1.0, steps - 1),
                               rtol=1e-12, atol=1e-12)
    # the blend is linear in alpha on the features entering the shared layers
    h_new = D.blocks[steps - 1](D.from_rgb[steps](x))
    h_old = D.from_rgb[steps - 1](F.avg_pool2d(x, 2))
    h = 0.6 * h_new + 0.4 * h_old
    for block in reversed(D.blocks[: steps - 1]):
        h = block(h)
    torch.testing.assert_close(D(x, 0.6, steps), D.output(h), rtol=1e-12, atol=1e-12)


def test_output_is_linear_no_tanh(nets):
    G, _ = nets
    z = torch.randn(4, 8, dtype=F64)
    base = G(z, 1.0, 0)
    with torch.no_grad():
        G.to_rgb[0].weight.mul_(3)
        G.to_rgb[0].bias.mul_(3)
    try:
        torch.testing.assert_close(G(z, 1.0, 0), 3 * base, rtol=1e-12, atol=1e-12)
    finally:
        with torch.no_grad():
            G.to_rgb[0].weight.div_(3)
            G.to_rgb[0].bias.div_(3)
    assert not any(isinstance(m, torch.nn.Tanh) for m in G.modules())


def test_every_generator_convolution_ends_in_pixel_norm(nets):
    G, _ = nets
    convs = [m for name, m in G.named_modules()
             if isinstance(m, pnn.EqualizedConv2d) and not name.startswith("to_rgb")]
    assert len(convs) == 1 + 2 * G.max_steps
    assert all(m.pixel_norm and m.lrelu for m in convs)
    assert G.input.dense_activation.pixel_norm
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append((m, i[0], o))) for m in convs]
    try:
        G(torch.randn(4, 8, dtype=F64), 0.5, G.max_steps)
    finally:
        for h in hooks:
            h.remove()
    assert len(seen) == len(convs)
    for m, x, y in seen:   # pixel_norm(lrelu(conv(x) * scale + bias)), fused
        a = F.leaky_relu(F.conv2d(x, m.weight, padding=1) * m.scale + m.bias.view(1, -1, 1, 1), 0.2)
        expected = a / (a.square().mean(dim=1, keepdim=True) + 1e-8).sqrt()
        torch.testing.assert_close(y, expected, rtol=1e-12, atol=1e-12)


def test_every_layer_has_an_equalized_learning_rate():
    G, D = progan.Generator(resolution=32), progan.Discriminator(resolution=32)
    for net in (G, D):
        for module in net.modules():
            if any(True for _ in module.parameters(recurse=False)):
                assert isinstance(module, (pnn.EqualizedConv2d, pnn.EqualizedLinear, pnn.BiasLeakyReLU)), module
    dense = G.input.dense
    assert abs(dense.weight.std().item() - 1) < 0.01          # N(0, 1), scaled at run time
    assert dense.scale == pytest.approx((2 / 16 / 512) ** 0.5)  # the authors' sqrt(2)/4 gain
    assert D.output.dense1.scale == pytest.approx((1 / 512) ** 0.5) and not D.output.dense1.lrelu
    assert all(m.scale == pytest.approx((1 / m.in_channels) ** 0.5) for m in G.to_rgb)


def test_discriminator_uses_minibatch_stddev_in_groups_of_four(nets):
    _, D = nets
    assert isinstance(D.output.minibatch_std, pnn.MinibatchStd)
    assert D.output.minibatch_std.group_size == 4 and D.output.minibatch_std.num_channels == 1
    x = torch.randn(8, 3, 16, 16, dtype=F64)
    y = x.clone()
    y[2] += 1.0   # with N = 8: M = 2 groups, group m holds samples m, m + 2, m + 4, m + 6
    changed = (D(x, 1.0, 2) - D(y, 1.0, 2)).abs().flatten() > 1e-12
    assert changed.tolist() == [True, False, True, False, True, False, True, False]
    with pytest.raises(ValueError, match="not divisible by the group size"):
        D(torch.randn(6, 3, 16, 16, dtype=F64), 1.0, 2)


def test_discriminator_stddev_over_the_whole_minibatch():
    """mbstd_group_size=None (the paper): one statistic over all N samples; any N works."""
    torch.manual_seed(0)
    D = progan.Discriminator(**TINY, mbstd_group_size=None).double()
    assert D.output.minibatch_std.group_size is None
    x = torch.randn(6, 3, 16, 16, dtype=F64)
    y = x.clone()
    y[2] += 1.0
    changed = (D(x, 1.0, 2) - D(y, 1.0, 2)).abs().flatten() > 1e-12
    assert changed.all()        # every sample's score sees sample 2 through the statistic
    seen = []
    D.output.minibatch_std.register_forward_hook(lambda m, i, o: seen.append(o))
    D(x, 1.0, 2)
    h = seen[0][:, :-1]
    sigma = ((h - h.mean(dim=0)).square().mean(dim=0) + 1e-8).sqrt().mean()
    torch.testing.assert_close(seen[0][:, -1], sigma.expand(6, 4, 4), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("averaging, extra", [("spatial", 16), ("none", 16), ("gpool", 16), ("flat", 1),
                                              ("group4", 4)])
def test_discriminator_takes_the_theano_averaging_variants(averaging, extra):
    D = progan.Discriminator(**TINY, mbstd_averaging=averaging)
    assert D.output.conv.in_channels == 16 + extra
    assert D(torch.randn(8, 3, 8, 8), 0.5, 1).shape == (8, 1)


def test_lsgan_noise_only_while_training():
    torch.manual_seed(0)
    D = progan.Discriminator(**TINY).double()
    x = torch.randn(4, 3, 8, 8, dtype=F64)
    clean = D(x, 1.0, 1)
    D.noise_strength = 0.1
    noisy = D(x, 1.0, 1)
    assert not torch.allclose(noisy, clean)
    D.eval()
    torch.testing.assert_close(D(x, 1.0, 1), clean, rtol=0, atol=0)


def test_latent_in_either_layout(nets):
    G, _ = nets
    z = torch.randn(4, 8, dtype=F64)
    torch.testing.assert_close(G(z.view(4, 8, 1, 1), 0.5, 2), G(z, 0.5, 2), rtol=0, atol=0)


def test_runs_channels_last_under_bf16_autocast_with_gradient_penalty():
    G, D = progan.Generator(**TINY), progan.Discriminator(**TINY)
    z = torch.randn(4, 8)
    real = torch.randn(4, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fake = G(z, 0.5, 3)
        assert fake.dtype == torch.bfloat16 and fake.shape == (4, 3, 32, 32)
        loss = (losses.wgan_critic_loss(D(real, 0.5, 3), D(fake.detach(), 0.5, 3))
                + 10 * losses.gradient_penalty(D, real, fake, 0.5, 3)
                + losses.drift_penalty(D(real, 0.5, 3)))
    loss.backward()
    grads = [p.grad for p in D.parameters() if p.grad is not None]
    assert torch.isfinite(loss) and grads and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("call,error,words", [
    (lambda G, D: G(torch.randn(4, 8), 0.5, 5), ValueError, r"steps must be in \[0, 4\]"),
    (lambda G, D: G(torch.randn(4, 8), 0.5, True), TypeError, "steps must be an int"),
    (lambda G, D: G(torch.randn(4, 8), 1.5, 1), ValueError, r"alpha must be in \[0, 1\]"),
    (lambda G, D: G(torch.randn(4, 8), "1", 1), TypeError, "alpha"),
    (lambda G, D: G(torch.randn(4, 7), 0.5, 1), ValueError, r"z must have shape \(N, 8\)"),
    (lambda G, D: D(torch.randn(4, 3, 16, 16), 0.5, 1), ValueError, r"x must have shape \(N, 3, 8, 8\)"),
])
def test_bad_calls_are_named(call, error, words):
    G, D = progan.Generator(**TINY), progan.Discriminator(**TINY)
    with pytest.raises(error, match=words):
        call(G, D)
