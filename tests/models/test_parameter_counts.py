"""Parameter counts of the zoo at the papers' configurations. The networks are built on the meta
device: counting needs no memory and no forward pass."""

import pytest
import torch

from pygan.models import cyclegan, progan


def count(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def conv(c_in, c_out, k):
    return c_in * c_out * k * k + c_out


def progan_table2():
    """The paper's Table 2 layer by layer (nf = 512 up to 32x32, then 256 ... 16 at 1024x1024)."""
    nf = lambda k: min(8192 // 2**k, 512)  # noqa: E731
    g = 512 * nf(1) * 16 + nf(1)                     # latent -> 512 x 4 x 4 (+ a bias per channel)
    g += conv(nf(1), nf(1), 3)
    d = conv(nf(1) + 1, nf(1), 3) + nf(1) * 16 * nf(0) + nf(0) + nf(0) + 1
    for res in range(3, 11):                         # 8x8 ... 1024x1024
        g += conv(nf(res - 2), nf(res - 1), 3) + conv(nf(res - 1), nf(res - 1), 3)
        d += conv(nf(res - 1), nf(res - 1), 3) + conv(nf(res - 1), nf(res - 2), 3)
    return g + conv(nf(9), 3, 1), d + conv(3, nf(9), 1)   # + toRGB / fromRGB at 1024x1024


@pytest.fixture(scope="module")
def progan_1024():
    with torch.device("meta"):
        return progan.Generator(), progan.Discriminator()


def test_progan_counts_the_papers_23_1_million_per_network(progan_1024):
    """Counted: every layer the 1024x1024 networks run, i.e. all parameters except the toRGB /
    fromRGB layers of the lower resolutions, which are used only while those resolutions train."""
    G, D = progan_1024
    g_used = count(G) - sum(count(m) for m in G.to_rgb[:-1])
    d_used = count(D) - sum(count(m) for m in D.from_rgb[:-1])
    g_table, d_table = progan_table2()
    assert (g_used, d_used) == (g_table, d_table) == (23_071_507, 23_077_137)
    assert round(g_used / 1e6, 1) == round(d_used / 1e6, 1) == 23.1       # Table 2: 23.1 M each
    # 23.08 M is the generator's count with all nine toRGB layers included
    assert count(G) == 23_079_115 and round(count(G) / 1e6, 2) == 23.08
    assert count(D) == 23_087_249


def test_progan_layer_widths_follow_the_paper(progan_1024):
    G, D = progan_1024
    assert [G.channels(s) for s in range(9)] == [512, 512, 512, 512, 256, 128, 64, 32, 16]
    assert G.input.dense.weight.shape == (512 * 16, 512)
    assert D.output.dense0.weight.shape == (512, 512 * 16)
    assert D.output.conv.weight.shape == (512, 513, 3, 3)   # minibatch stddev adds one channel


def test_cyclegan_counts_the_official_numbers():
    with torch.device("meta"):
        G9 = cyclegan.ResnetGenerator(3, 3, base_channels=64, num_blocks=9)
        G6 = cyclegan.ResnetGenerator(3, 3, base_channels=64, num_blocks=6)
        D = cyclegan.PatchDiscriminator(3, base_channels=64, num_layers=3)
    assert round(count(G9) / 1e6, 3) == 11.378
    assert round(count(D) / 1e6, 3) == 2.765
    assert count(G9) == 11_378_179 and count(D) == 2_764_737
    assert count(G9) - count(G6) == 3 * 2 * conv(256, 256, 3)   # three fewer residual blocks
