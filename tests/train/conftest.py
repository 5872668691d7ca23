"""Tiny settings shared by the training tests: every model at a few channels, a few steps."""

import pytest
import torch

TINY = {
    "gan": ["--resolution", "16", "--width", "0.03", "--latent-dim", "8", "--batch-size", "8"],
    "dcgan": ["--resolution", "16", "--base-channels", "4", "--latent-dim", "8", "--batch-size", "8"],
    "lsgan": ["--resolution", "16", "--base-channels", "4", "--latent-dim", "8", "--batch-size", "8"],
    "wgan": ["--resolution", "16", "--base-channels", "4", "--latent-dim", "8", "--batch-size", "8",
             "--critic-steps", "2"],
    "wgan-gp": ["--resolution", "16", "--base-channels", "4", "--latent-dim", "8", "--batch-size", "8",
                "--critic-steps", "2"],
    "cyclegan": ["--resolution", "32", "--ngf", "4", "--ndf", "4", "--num-blocks", "1", "--batch-size", "2"],
    # 8x8 final: 16 images at 4x4, then 16 fading in and 16 stable at 8x8 = 12 steps of 4
    "progan": ["--resolution", "8", "--fmap-base", "16", "--fmap-max", "8", "--latent-dim", "8",
               "--batch-size", "4", "--fade-kimg", "0.016", "--stable-kimg", "0.016"],
}
# training-time evaluation stays on (it runs at the end of every test run), on few images
QUIET = ["--progress", "false", "--tensorboard", "false", "--eval-n", "16"]


@pytest.fixture(autouse=True)
def one_thread():
    """The training tests' networks have a few channels: one intra-op thread is fastest, and immune
    to oversubscription on a busy 2-core machine (where two threads spin-waiting on each other
    made a tiny step ~10x slower); restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny():
    def args(model: str, out, *extra: str) -> list[str]:
        return [model, "--out", str(out), *TINY[model], *QUIET, *extra]
    return args


@pytest.fixture
def tiny_settings():
    """(TINY, QUIET) for tests that build their own command lines."""
    return TINY, QUIET
