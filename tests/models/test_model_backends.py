"""The same model under the reference and a compiled backend gives equal outputs, parameter
gradients and WGAN-GP parameter gradients, in float64 (to 1e-10; the backends differ only in
summation order, ~1e-16 relative per op)."""

import pytest
import torch

import pygan.ops as ops
from pygan import losses
from pygan.models import cyclegan, dcgan, gan, progan, wgan

F64 = torch.float64
TOL = dict(rtol=1e-10, atol=1e-10)
PROGAN_TINY = dict(resolution=32, latent_dim=8, img_channels=3, fmap_base=64, fmap_max=16)


@pytest.fixture(params=["cpp"])
def backend(request):
    status = ops.available_backends()[request.param]
    if not status.available:
        pytest.skip(f"{request.param} backend unavailable: " + status.reason)
    return request.param


def nonzero_biases(module):
    """Trained-looking biases, so that the bias gradients of the fused ops are exercised."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.1)
    return module.double()


# name -> (build generator, build critic, latent shape, extra call arguments)
MODELS = {
    "mlp": (lambda: gan.Generator(8, (1, 8, 8), (16, 32)), lambda: gan.Discriminator((1, 8, 8), (32, 16)),
            (8,), ()),
    "dcgan32": (lambda: dcgan.Generator(32, 8, 3, 4), lambda: dcgan.Discriminator(32, 3, 4), (8,), ()),
    "wgan-layer": (lambda: wgan.Generator(32, 8, 3, 4), lambda: wgan.Critic(32, 3, 4, norm="layer"), (8,), ()),
    "wgan-none": (lambda: wgan.Generator(32, 8, 3, 4), lambda: wgan.Critic(32, 3, 4, norm="none"), (8,), ()),
    "cyclegan": (lambda: cyclegan.ResnetGenerator(3, 3, 4, 2), lambda: cyclegan.PatchDiscriminator(3, 4, 3),
                 (3, 32, 32), ()),
    "progan-4": (lambda: progan.Generator(**PROGAN_TINY), lambda: progan.Discriminator(**PROGAN_TINY),
                 (8,), (1.0, 0)),
    "progan-32-fading": (lambda: progan.Generator(**PROGAN_TINY), lambda: progan.Discriminator(**PROGAN_TINY),
                         (8,), (0.3, 3)),
}


def pygan_ops_in_graph(tensor):
    """Names of the pygan ops whose backward nodes are in the autograd graph of ``tensor``."""
    seen, found, stack = set(), set(), [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        name = type(node).__name__
        if "pygan_" in name:
            found.add(name.split("pygan_", 1)[1].split("_default")[0])
        stack.extend(next_node for next_node, _ in node.next_functions)
    return found


def step(name, backend):
    make_g, make_d, latent_shape, extra = MODELS[name]
    torch.manual_seed(0)
    G, D = nonzero_biases(make_g()), nonzero_biases(make_d())
    z = torch.randn(4, *latent_shape, dtype=F64)
    real = torch.randn(4, *G(z, *extra).shape[1:], dtype=F64)
    with ops.use_backend(backend):
        fake = G(z, *extra)
        used = pygan_ops_in_graph(fake) | pygan_ops_in_graph(D(real, *extra))
        g_loss = losses.wgan_generator_loss(D(fake, *extra))
        g_grads = torch.autograd.grad(g_loss, list(G.parameters()), allow_unused=True)
        torch.manual_seed(1)
        d_loss = (losses.wgan_critic_loss(D(real, *extra), D(fake.detach(), *extra))
                  + 10 * losses.gradient_penalty(D, real, fake, *extra))
        d_grads = torch.autograd.grad(d_loss, list(D.parameters()), allow_unused=True)
    return fake.detach(), g_loss.detach(), g_grads, d_loss.detach(), d_grads, used


def assert_grads_equal(what, grads, grads_ref, names):
    nonzero = 0
    for name, g, g_ref in zip(names, grads, grads_ref):
        assert (g is None) == (g_ref is None), f"{what} {name}: used by one backend only"
        if g_ref is not None:
            torch.testing.assert_close(g, g_ref, **TOL, msg=lambda m: f"{what} {name}: {m}")
            nonzero += bool(g_ref.abs().max() > 0)
    assert nonzero > 0, f"{what}: every reference gradient is zero; the test would be vacuous"


@pytest.mark.parametrize("name", list(MODELS))
def test_model_backend_matches_reference(name, backend):
    fake_ref, g_loss_ref, g_grads_ref, d_loss_ref, d_grads_ref, used_ref = step(name, "reference")
    fake, g_loss, g_grads, d_loss, d_grads, used = step(name, backend)
    assert not used_ref
    assert used, f"{name}: no pygan op ran under the {backend} backend"
    torch.testing.assert_close(fake, fake_ref, **TOL)
    torch.testing.assert_close(g_loss, g_loss_ref, **TOL)
    torch.testing.assert_close(d_loss, d_loss_ref, **TOL)
    make_g, make_d, _, _ = MODELS[name]
    assert_grads_equal("generator", g_grads, g_grads_ref, [n for n, _ in make_g().named_parameters()])
    assert_grads_equal("critic (WGAN-GP)", d_grads, d_grads_ref, [n for n, _ in make_d().named_parameters()])


def test_progan_runs_every_fused_op_under_the_compiled_backend(backend):
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        step("progan-32-fading", backend)
    ran = {event.key.split("::", 1)[1] for event in prof.key_averages() if event.key.startswith("pygan::")}
    assert {"pixel_norm", "bias_lrelu", "bias_lrelu_pixel_norm", "minibatch_std", "fade_in",
            "gradient_penalty"} <= ran, ran
