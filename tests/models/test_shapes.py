"""Output shapes of every model at every resolution, and the input checks."""

import pytest
import torch

from pygan.models import cyclegan, dcgan, gan, progan, wgan

PROGAN_TINY = dict(resolution=256, latent_dim=8, img_channels=3, fmap_base=64, fmap_max=16)


def test_mlp_gan_shapes():
    G, D = gan.Generator(), gan.Discriminator(dropout=0.3)
    x = G(torch.randn(5, 100))
    assert x.shape == (5, 1, 28, 28)
    assert x.min() >= -1 and x.max() <= 1                      # tanh output
    assert D(x).shape == (5, 1)
    assert D(x.contiguous(memory_format=torch.channels_last)).shape == (5, 1)


@pytest.mark.parametrize("image_size", [32, 64])
def test_dcgan_shapes(image_size):
    G = dcgan.Generator(image_size, latent_dim=16, img_channels=3, base_channels=4)
    D = dcgan.Discriminator(image_size, img_channels=3, base_channels=4)
    x = G(torch.randn(3, 16))
    assert x.shape == (3, 3, image_size, image_size)
    assert torch.equal(G(torch.zeros(2, 16, 1, 1)), G(torch.zeros(2, 16)))   # both z layouts
    assert D(x).shape == (3, 1)


def test_dcgan_64_layers_follow_the_paper():
    G, D = dcgan.Generator(64), dcgan.Discriminator(64)
    g_convs = [m for m in G.main if isinstance(m, torch.nn.ConvTranspose2d)]
    d_convs = [m for m in D.main if isinstance(m, torch.nn.Conv2d)]
    assert [m.out_channels for m in g_convs] == [512, 256, 128, 64, 3]
    assert [m.out_channels for m in d_convs] == [64, 128, 256, 512, 1]
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in D.main) == 3   # not on the input layer
    assert isinstance(G.main[-1], torch.nn.Tanh)


@pytest.mark.parametrize("norm", ["layer", "none"])
@pytest.mark.parametrize("image_size", [32, 64])
def test_wgan_critic_shapes_and_no_batch_norm(image_size, norm):
    C = wgan.Critic(image_size, img_channels=3, base_channels=4, norm=norm)
    assert C(torch.randn(2, 3, image_size, image_size)).shape == (2, 1)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in C.modules())
    assert sum(isinstance(m, torch.nn.GroupNorm) for m in C.modules()) == (
        int(torch.log2(torch.tensor(image_size))) - 3 if norm == "layer" else 0)
    assert wgan.Generator is dcgan.Generator


def test_wgan_critic_scores_each_sample_independently():
    """No batch statistics: a sample's score does not depend on the rest of the batch."""
    C = wgan.Critic(32, base_channels=4, norm="layer").double()
    x = torch.randn(4, 3, 32, 32, dtype=torch.float64)
    torch.testing.assert_close(C(x)[:1], C(x[:1]), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("num_blocks", [6, 9])
def test_cyclegan_generator_shapes(num_blocks):
    G = cyclegan.ResnetGenerator(3, 3, base_channels=4, num_blocks=num_blocks)
    assert sum(isinstance(m, cyclegan.ResnetBlock) for m in G.modules()) == num_blocks
    x = torch.randn(2, 3, 32, 24)
    y = G(x)
    assert y.shape == x.shape and y.abs().max() <= 1
    assert G(torch.randn(1, 3, 16, 16).contiguous(memory_format=torch.channels_last)).shape == (1, 3, 16, 16)


def test_patchgan_scores_30x30_patches_of_a_256_image():
    D = cyclegan.PatchDiscriminator(3, base_channels=4, num_layers=3)
    assert D(torch.randn(1, 3, 256, 256)).shape == (1, 1, 30, 30)


def test_patchgan_receptive_field_is_70():
    """The convolutions give each score a 70x70 patch of the input (instance norm, which mixes
    the whole image, is taken out to see the convolutions' receptive field)."""
    D = cyclegan.PatchDiscriminator(1, base_channels=2, num_layers=3).double()
    for i, m in enumerate(D.model):
        if isinstance(m, torch.nn.InstanceNorm2d):
            D.model[i] = torch.nn.Identity()
    x = torch.randn(1, 1, 96, 96, dtype=torch.float64, requires_grad=True)
    out = D(x)
    (grad,) = torch.autograd.grad(out[0, 0, 4, 4], x)
    rows = grad[0, 0].abs().sum(dim=1).nonzero().flatten()
    cols = grad[0, 0].abs().sum(dim=0).nonzero().flatten()
    assert rows.max() - rows.min() + 1 == 70 and cols.max() - cols.min() + 1 == 70


@pytest.mark.parametrize("steps", range(7))
def test_progan_shapes_at_every_resolution(steps):
    G, D = progan.Generator(**PROGAN_TINY), progan.Discriminator(**PROGAN_TINY)
    size = 4 * 2**steps
    for alpha in (0.0, 0.5, 1.0):
        x = G(torch.randn(4, 8), alpha, steps)
        assert x.shape == (4, 3, size, size)
        assert D(x, alpha, steps).shape == (4, 1)


@pytest.mark.parametrize("make,args,error,words", [
    (gan.Generator, (torch.randn(2, 99),), ValueError, r"z must have shape \(N, 100\)"),
    (gan.Discriminator, (torch.randn(2, 784),), ValueError, r"x must have shape \(N, 1, 28, 28\)"),
    (lambda: dcgan.Generator(64, 8, 3, 2), (torch.randn(2, 8, 2, 2),), ValueError, "z must have shape"),
    (lambda: dcgan.Discriminator(64, 3, 2), (torch.randn(2, 3, 32, 32),), ValueError, r"\(N, 3, 64, 64\)"),
    (lambda: cyclegan.ResnetGenerator(3, 3, 2, 1), (torch.randn(1, 3, 18, 18),), ValueError, "multiples of 4"),
    (lambda: cyclegan.PatchDiscriminator(3, 2), (torch.randn(1, 1, 64, 64),), ValueError, r"\(N, 3, H, W\)"),
    (lambda: wgan.Critic(32, 3, 2), (torch.ones(1, 3, 32, 32, dtype=torch.long),), TypeError, "floating-point"),
])
def test_bad_inputs_are_named(make, args, error, words):
    with pytest.raises(error, match=words):
        make()(*args)


@pytest.mark.parametrize("make,error,words", [
    (lambda: dcgan.Generator(image_size=48), ValueError, "image_size must be a power of two"),
    (lambda: dcgan.Discriminator(image_size=8), ValueError, "image_size"),
    (lambda: wgan.Critic(norm="batch"), ValueError, "norm must be one of"),
    (lambda: gan.Generator(hidden=()), TypeError, "hidden"),
    (lambda: gan.Discriminator(dropout=1.5), ValueError, "dropout"),
    (lambda: cyclegan.ResnetGenerator(num_blocks=-1), ValueError, "num_blocks"),
    (lambda: cyclegan.PatchDiscriminator(num_layers=0), ValueError, "num_layers"),
    (lambda: progan.Generator(resolution=100), ValueError, "resolution must be a power of two"),
    (lambda: progan.Discriminator(fmap_max=0), ValueError, "fmap_max"),
])
def test_bad_constructor_arguments_are_named(make, error, words):
    with pytest.raises(error, match=words):
        make()
