"""The container for two-domain (unpaired translation) data, as CycleGAN consumes it."""

from __future__ import annotations

from dataclasses import dataclass

from torch.utils.data import Dataset


@dataclass(frozen=True)
class UnpairedDomains:
    """Two image domains for unpaired translation (CycleGAN).

    Train on ``a`` and ``b`` sampled independently (two shuffled loaders). ``pairs`` lists
    ground-truth correspondences ``(index in a, index in b)`` kept for evaluation only, or is None
    when the domains have none (two folders of images). ``domain_names`` names A and B.
    """

    a: Dataset
    b: Dataset
    pairs: list[tuple[int, int]] | None = None
    domain_names: tuple[str, str] = ("A", "B")
