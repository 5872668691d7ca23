r"""Precision, recall, density and coverage: k-nearest-neighbour estimates of how much two feature
sets' manifolds overlap (torchmetrics 1.9 has none of them, so they are computed here, batched).

With real features :math:`r_1..r_N`, fake :math:`f_1..f_M`, :math:`B(x, \rho)` the ball of radius
:math:`\rho` around :math:`x` and :math:`\mathrm{NND}_k(r_i)` the distance from :math:`r_i` to its
k-th nearest *other* real point (likewise for fakes):

* precision (Kynkäänniemi et al., *Improved Precision and Recall Metric for Assessing Generative
  Models*, NeurIPS 2019): the fraction of fakes inside the real manifold
  :math:`\bigcup_i B(r_i, \mathrm{NND}_k(r_i))`;
* recall (same paper): the fraction of reals inside the fake manifold
  :math:`\bigcup_j B(f_j, \mathrm{NND}_k(f_j))`;
* density (Naeem et al., *Reliable Fidelity and Diversity Metrics for Generative Models*, ICML
  2020): :math:`\frac{1}{kM}\sum_j \sum_i 1[f_j \in B(r_i, \mathrm{NND}_k(r_i))]` — how many real
  balls hold each fake, around 1 when the sets match, unbounded above;
* coverage (same paper): the fraction of reals whose ball holds at least one fake,
  :math:`\frac{1}{N}\sum_i 1[\exists j: f_j \in B(r_i, \mathrm{NND}_k(r_i))]`.

Distances are Euclidean; a point on a ball's boundary counts as inside.
"""

from __future__ import annotations

import torch

from ._checks import positive_int


def _kth_neighbour_distance(x: torch.Tensor, k: int, chunk: int) -> torch.Tensor:
    """Distance from each row of x to its k-th nearest other row."""
    out = []
    for s in range(0, x.shape[0], chunk):
        d = torch.cdist(x[s:s + chunk], x)
        # the (k+1)-th smallest: the smallest is the point itself at distance 0
        out.append(d.kthvalue(k + 1, dim=1).values)
    return torch.cat(out)


def prdc(real: torch.Tensor, fake: torch.Tensor, *, k: int = 5, chunk: int = 1024) -> dict[str, float]:
    """``{"precision", "recall", "density", "coverage"}`` between feature sets ``real`` (N, F) and
    ``fake`` (M, F) with ``k`` nearest neighbours (N, M > k). ``chunk``: rows per distance block
    (memory only)."""
    for name, f in (("real", real), ("fake", fake)):
        if not isinstance(f, torch.Tensor) or f.ndim != 2 or not f.is_floating_point():
            raise ValueError(f"{name} must be a float tensor of features (N, F), got "
                             f"{tuple(f.shape) if isinstance(f, torch.Tensor) else type(f).__name__}")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"real and fake must have the same feature width, got {real.shape[1]} and {fake.shape[1]}")
    k = positive_int(k, "k")
    chunk = positive_int(chunk, "chunk")
    if min(real.shape[0], fake.shape[0]) <= k:
        raise ValueError(f"k={k} needs more than k rows in both sets, got {real.shape[0]} real and "
                         f"{fake.shape[0]} fake")
    real, fake = real.double(), fake.double()
    radius_real = _kth_neighbour_distance(real, k, chunk)                  # (N,)
    radius_fake = _kth_neighbour_distance(fake, k, chunk)                  # (M,)

    in_real_balls = torch.zeros(fake.shape[0], dtype=torch.float64)      # per fake: how many balls
    real_covered = torch.zeros(real.shape[0], dtype=torch.bool)
    for s in range(0, fake.shape[0], chunk):
        d = torch.cdist(fake[s:s + chunk], real)                            # (m, N)
        inside = d <= radius_real[None, :]
        in_real_balls[s:s + chunk] = inside.sum(dim=1).double()
        real_covered |= inside.any(dim=0)
    real_in_fake = torch.zeros(real.shape[0], dtype=torch.bool)
    for s in range(0, real.shape[0], chunk):
        d = torch.cdist(real[s:s + chunk], fake)                            # (n, M)
        real_in_fake[s:s + chunk] = (d <= radius_fake[None, :]).any(dim=1)
    return {
        "precision": float((in_real_balls > 0).double().mean()),
        "recall": float(real_in_fake.double().mean()),
        "density": float(in_real_balls.sum() / (k * fake.shape[0])),
        "coverage": float(real_covered.double().mean()),
    }
