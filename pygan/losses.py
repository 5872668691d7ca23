"""GAN losses and regularisers. Scores are the raw (pre-sigmoid) outputs of a discriminator or
critic, of any shape with the batch first; every loss averages over all of their elements.

Non-saturating GAN (Goodfellow et al. 2014, "Generative Adversarial Nets", §3), in logits:
    D: E[softplus(-D(x))] + E[softplus(D(G(z)))]       = BCE-with-logits, labels real 1 / fake 0
    G: E[softplus(-D(G(z)))]                           = BCE-with-logits with label 1 on fakes
LSGAN (Mao et al. 2017, "Least Squares GANs", eq. 2) with labels a (fake), b (real), c (G's):
    D: 1/2 E[(D(x) - b)^2] + 1/2 E[(D(G(z)) - a)^2]     G: 1/2 E[(D(G(z)) - c)^2]
WGAN (Arjovsky et al. 2017, "Wasserstein GAN", Algorithm 1):
    critic: E[D(G(z))] - E[D(x)]     generator: -E[D(G(z))]     clip_weights_ after each step
WGAN-GP (Gulrajani et al. 2017, "Improved Training of Wasserstein GANs", Algorithm 1):
    gradient_penalty = E[(||grad_x_hat D(x_hat)||_2 - 1)^2],  x_hat = e x + (1 - e) G(z),
    one e ~ U[0, 1] per sample; the caller multiplies by lambda (10 in the paper).
ProGAN drift (Karras et al. 2018, "Progressive Growing of GANs", §A.1): eps_drift * E[D(x)^2].
R1 (Mescheder et al. 2018, "Which Training Methods for GANs do actually Converge?", eq. 9):
    r1_penalty = E[||grad_x D(x)||_2^2] over real samples; the caller multiplies by gamma / 2.

Mixed precision: under float16 autocast pass the ``GradScaler`` in use as ``scaler=`` to the
penalties; the critic's output is scaled before ``autograd.grad`` (so small gradients do not
underflow in float16) and the gradients are unscaled before the penalty is computed, so the
penalty is that of the true gradients. If the scaled backward overflows, the penalty is
inf/NaN and the scaler's ``step`` skips the update and lowers the scale, as for any overflow.
bfloat16 has float32's range and needs no scaler.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from . import ops

__all__ = [
    "bce_discriminator_loss", "nonsaturating_generator_loss", "lsgan_discriminator_loss",
    "lsgan_generator_loss", "wgan_critic_loss", "wgan_generator_loss", "clip_weights_",
    "gradient_penalty", "r1_penalty", "drift_penalty",
]


def _scores(name: str, t: object) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of discriminator scores, got {type(t).__name__}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}")
    if t.numel() == 0:
        raise ValueError(f"{name} must hold at least one score; got shape {tuple(t.shape)}")
    return t


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a Python number, got {type(value).__name__}")
    return float(value)


# --- non-saturating GAN ----------------------------------------------------------------------

def bce_discriminator_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor,
                           real_label: float = 1.0) -> torch.Tensor:
    """``BCE(sigmoid(D(x)), real_label) + BCE(sigmoid(D(G(z))), 0)``, each averaged, from logits.

    ``real_label`` < 1 gives one-sided label smoothing (Salimans et al. 2016, §3.4).
    """
    real_scores, fake_scores = _scores("real_scores", real_scores), _scores("fake_scores", fake_scores)
    real_label = _number("real_label", real_label)
    real = F.binary_cross_entropy_with_logits(real_scores, torch.full_like(real_scores, real_label))
    fake = F.binary_cross_entropy_with_logits(fake_scores, torch.zeros_like(fake_scores))
    return real + fake


def nonsaturating_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """``E[softplus(-D(G(z)))]``: the generator maximises log D(G(z)) (Goodfellow et al. §3)."""
    return F.softplus(-_scores("fake_scores", fake_scores)).mean()


# --- LSGAN -----------------------------------------------------------------------------------

def lsgan_discriminator_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor,
                             real_label: float = 1.0, fake_label: float = 0.0) -> torch.Tensor:
    """``1/2 E[(D(x) - real_label)^2] + 1/2 E[(D(G(z)) - fake_label)^2]`` (Mao et al. eq. 2)."""
    real_scores, fake_scores = _scores("real_scores", real_scores), _scores("fake_scores", fake_scores)
    b, a = _number("real_label", real_label), _number("fake_label", fake_label)
    return 0.5 * (real_scores - b).square().mean() + 0.5 * (fake_scores - a).square().mean()


def lsgan_generator_loss(fake_scores: torch.Tensor, target_label: float = 1.0) -> torch.Tensor:
    """``1/2 E[(D(G(z)) - target_label)^2]`` (Mao et al. eq. 2, c = 1)."""
    c = _number("target_label", target_label)
    return 0.5 * (_scores("fake_scores", fake_scores) - c).square().mean()


# --- WGAN ------------------------------------------------------------------------------------

def wgan_critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """``E[D(G(z))] - E[D(x)]``: minus the critic's estimate of the Wasserstein-1 distance."""
    return _scores("fake_scores", fake_scores).mean() - _scores("real_scores", real_scores).mean()


def wgan_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """``-E[D(G(z))]``."""
    return -_scores("fake_scores", fake_scores).mean()


@torch.no_grad()
def clip_weights_(critic: nn.Module, clip_value: float = 0.01) -> None:
    """Clamp every parameter of ``critic`` to [-clip_value, clip_value] in place (WGAN's crude
    Lipschitz constraint; c = 0.01 in Arjovsky et al.). Call after each critic update."""
    if not isinstance(critic, nn.Module):
        raise TypeError(f"critic must be an nn.Module, got {type(critic).__name__}")
    clip_value = _number("clip_value", clip_value)
    if not clip_value > 0:
        raise ValueError(f"clip_value must be > 0, got {clip_value}")
    for p in critic.parameters():
        p.clamp_(-clip_value, clip_value)


# --- penalties -------------------------------------------------------------------------------

def _input_gradient(critic: Callable[..., torch.Tensor], x: torch.Tensor, critic_args: tuple,
                    critic_kwargs: dict, scaler: torch.amp.GradScaler | None) -> torch.Tensor:
    """d(sum of critic(x))/dx with its graph kept (for the penalty's backward), unscaled."""
    scores = critic(x, *critic_args, **critic_kwargs)
    if not isinstance(scores, torch.Tensor):
        raise TypeError(f"critic must return a tensor of scores, got {type(scores).__name__}")
    if scaler is None or not scaler.is_enabled():
        (grad,) = torch.autograd.grad(scores.sum(), x, create_graph=True)
        return grad
    # Differentiate the scaled float32 MEAN: each float16 score then receives scale / numel,
    # finite whenever the scaler's training loss (a mean) is; the derivative of the sum, the
    # scale itself, is float16's infinity at the default scale of 2^16.
    (scaled,) = torch.autograd.grad(scaler.scale(scores.float().mean()), x, create_graph=True)
    return scaled * (scores.numel() / scaler.get_scale())


def _check_penalty_args(critic, scaler) -> None:
    if not callable(critic):
        raise TypeError(f"critic must be callable (an nn.Module or function), got {type(critic).__name__}")
    if scaler is not None and not isinstance(scaler, torch.amp.GradScaler):
        raise TypeError(f"scaler must be a torch.amp.GradScaler or None, got {type(scaler).__name__}")


def _sample_batch(name: str, t: object) -> torch.Tensor:
    if not isinstance(t, torch.Tensor) or not t.is_floating_point():
        got = t.dtype if isinstance(t, torch.Tensor) else type(t).__name__
        raise TypeError(f"{name} must be a floating-point torch.Tensor of samples, got {got}")
    if t.dim() < 1 or t.shape[0] == 0:
        raise ValueError(f"{name} must be a batch (N, ...) with N >= 1; got shape {tuple(t.shape)}")
    return t


def gradient_penalty(critic: Callable[..., torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
                     *critic_args, target: float = 1.0,
                     scaler: torch.amp.GradScaler | None = None,
                     **critic_kwargs) -> torch.Tensor:
    """WGAN-GP's penalty ``E[(||grad_x_hat critic(x_hat)||_2 - target)^2]`` (Gulrajani et al. 2017).

    ``x_hat = e * real + (1 - e) * fake`` with ONE coefficient e ~ U[0, 1) per sample: the
    paper's argument concerns points on the straight lines between paired real and fake samples,
    and a per-pixel coefficient (a known bug of popular code) samples points off those lines.
    ``real`` and ``fake`` are detached, so the penalty trains only the critic. The input gradient is taken with ``create_graph=True`` and reduced by
    :func:`pygan.ops.gradient_penalty`, so the penalty backpropagates into the critic's parameters.

    Args:
        critic: called as ``critic(x_hat, *critic_args, **critic_kwargs)`` (e.g. ProGAN's
            ``D(x, alpha, steps)``); must score each sample independently (no batch norm).
        real, fake: (N, ...) batches of the same shape.
        target: the norm the gradients are pulled to (1 in the paper).
        scaler: the ``GradScaler`` of a float16-autocast training loop; the gradients are
            unscaled before the penalty. Not needed for bfloat16 or float32.

    Returns: a 0-dim tensor; multiply by lambda (10 in the paper) and add to the critic's loss.
    """
    _check_penalty_args(critic, scaler)
    real, fake = _sample_batch("real", real), _sample_batch("fake", fake)
    if real.shape != fake.shape:
        raise ValueError(f"real and fake must have the same shape; got {tuple(real.shape)} "
                         f"and {tuple(fake.shape)}")
    if real.device != fake.device:
        raise ValueError(f"real is on {real.device} but fake is on {fake.device}")
    real, fake = real.detach(), fake.detach().to(real.dtype)
    coefficient = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), dtype=real.dtype,
                             device=real.device)
    x_hat = torch.lerp(fake, real, coefficient).requires_grad_(True)
    grad = _input_gradient(critic, x_hat, critic_args, critic_kwargs, scaler)
    return ops.gradient_penalty(grad, target)


def r1_penalty(critic: Callable[..., torch.Tensor], real: torch.Tensor, *critic_args,
               scaler: torch.amp.GradScaler | None = None, **critic_kwargs) -> torch.Tensor:
    """R1 regulariser ``E[||grad_x critic(x)||_2^2]`` on real samples (Mescheder et al. 2018).

    Arguments as :func:`gradient_penalty`. Returns a 0-dim tensor; multiply by gamma / 2.
    """
    _check_penalty_args(critic, scaler)
    x = _sample_batch("real", real).detach().requires_grad_(True)
    grad = _input_gradient(critic, x, critic_args, critic_kwargs, scaler)
    return ops.gradient_penalty(grad, 0.0)


def drift_penalty(real_scores: torch.Tensor, epsilon: float = 0.001) -> torch.Tensor:
    """ProGAN's drift term ``epsilon * E[D(x)^2]`` (Karras et al. 2018, §A.1, epsilon = 0.001):
    keeps the critic's scores near zero when it is trained with the WGAN-GP loss."""
    epsilon = _number("epsilon", epsilon)
    if epsilon < 0:
        raise ValueError(f"epsilon must be >= 0, got {epsilon}")
    return epsilon * _scores("real_scores", real_scores).square().mean()
