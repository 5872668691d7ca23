r"""Sliced Wasserstein distance (SWD) between two image sets over a Laplacian pyramid, the
measure of Karras et al., *Progressive Growing of GANs for Improved Quality, Stability, and
Variation* (ICLR 2018), §5 and appendix D.

The maths, per pyramid level:

1. **Laplacian pyramid** (Burt & Adelson, 1983). With the binomial kernel
   :math:`k = \tfrac{1}{16}[1, 4, 6, 4, 1]`, :math:`K = k k^\top`, ``down(x) = (K * x)[::2, ::2]``
   and ``up(x) = 4 K * zero_insert(x)`` (mirror padding at the borders),
   :math:`g_0 = x,\ g_{i+1} = \mathrm{down}(g_i)`, band :math:`L_i = g_i - \mathrm{up}(g_{i+1})`;
   the last level is the low-pass :math:`g` at 16×16. An :math:`r\times r` image has
   :math:`\log_2(r/16) + 1` levels, so the result has one value per resolution r, r/2, …, 16
   (sizes that are not powers of two stop halving when the size turns odd: 28 -> one level).
2. **Descriptors**: ``patches`` (128) random 7×7 neighbourhoods per image and level, each a vector
   of :math:`C\cdot 49` numbers. The descriptors of each set are normalised per channel: minus the
   channel's mean, over the set's descriptors and their 49 pixels, divided by its standard
   deviation. The same random positions are used for both sets (common random numbers), so
   identical sets give exactly 0.
3. **Sliced Wasserstein distance** (Rabin et al., 2011): for unit directions
   :math:`\theta_1 \dots \theta_D` drawn uniformly on the sphere, project both descriptor sets
   :math:`\{a_i\}, \{b_i\}` (:math:`M` each) and take the 1-D Wasserstein-1 distance between the
   projections, which for equal-size samples is the mean absolute difference of the sorted values:

   .. math:: \mathrm{SWD} = \frac{1}{D}\sum_{d=1}^{D} \frac{1}{M}\sum_{i=1}^{M}
             \bigl|\operatorname{sort}(a\theta_d)_i - \operatorname{sort}(b\theta_d)_i\bigr|

   ``directions`` (512) per repeat, averaged over ``repeats`` (4) draws, as in the paper.

Values are reported ×10³ as in the paper (its tables show 16384 images per set; the value
depends on the sample size, so compare numbers computed with the same ``n``).
Everything is batched torch (``unfold``-free gathers, one matmul + sort per chunk of
directions), so it runs on a GPU as it is and on the CPU for a few hundred images.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ._checks import as_float_images, positive_int

PATCH = 7
MIN_RESOLUTION = 16
_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


@dataclass(frozen=True)
class SWDResult:
    """SWD ×10³ per pyramid level (``levels``: resolution -> value, finest first) and ``mean``,
    their average (the paper's "avg" column)."""

    levels: dict[int, float] = field(default_factory=dict)
    mean: float = 0.0

    def as_dict(self) -> dict[str, float]:
        out = {f"swd_{r}": v for r, v in self.levels.items()}
        out["swd"] = self.mean
        return out


def _blur(x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    k = _BINOMIAL.to(x.device, x.dtype)
    kernel = (gain * torch.outer(k, k)).expand(x.shape[1], 1, 5, 5)
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), kernel, groups=x.shape[1])


def pyramid_down(x: torch.Tensor) -> torch.Tensor:
    """Blur with the 5×5 binomial kernel, keep every second row and column."""
    return _blur(x)[..., ::2, ::2]


def pyramid_up(x: torch.Tensor) -> torch.Tensor:
    """Insert zeros between pixels, blur with 4× the binomial kernel (twice the size)."""
    n, c, h, w = x.shape
    up = x.new_zeros(n, c, 2 * h, 2 * w)
    up[..., ::2, ::2] = x
    return _blur(up, 4.0)


def laplacian_pyramid(x: torch.Tensor, n_levels: int) -> list[torch.Tensor]:
    """``n_levels`` levels, finest first: ``n_levels - 1`` band-pass images, then the low-pass
    remainder. Summing back (``g = L_i + up(g_{i+1})``) reconstructs ``x`` exactly."""
    levels = []
    g = x
    for _ in range(n_levels - 1):
        smaller = pyramid_down(g)
        levels.append(g - pyramid_up(smaller))
        g = smaller
    levels.append(g)
    return levels


def _level_sizes(resolution: int) -> list[int]:
    """r, r/2, … while the size halves exactly and stays >= 16 (r = 28 -> [28])."""
    sizes = [resolution]
    while sizes[-1] % 2 == 0 and sizes[-1] // 2 >= MIN_RESOLUTION:
        sizes.append(sizes[-1] // 2)
    return sizes


def _descriptors(images: torch.Tensor, ys: list[torch.Tensor], xs: list[torch.Tensor],
                 batch_size: int) -> list[torch.Tensor]:
    """Per level, the (N·patches, C, 7, 7) neighbourhoods at positions ys/xs (each (N, patches))."""
    n_levels = len(ys)
    out: list[list[torch.Tensor]] = [[] for _ in range(n_levels)]
    offsets = torch.arange(PATCH, device=images.device)
    for start in range(0, images.shape[0], batch_size):
        batch = images[start:start + batch_size]
        for level, img in enumerate(laplacian_pyramid(batch, n_levels)):
            y = ys[level][start:start + batch_size]
            x = xs[level][start:start + batch_size]
            rows = (y[:, :, None] + offsets)[:, :, :, None]          # (B, P, 7, 1)
            cols = (x[:, :, None] + offsets)[:, :, None, :]          # (B, P, 1, 7)
            idx = torch.arange(batch.shape[0], device=images.device)[:, None, None, None]
            patches = img.permute(0, 2, 3, 1)[idx, rows, cols]      # (B, P, 7, 7, C)
            out[level].append(patches.reshape(-1, PATCH, PATCH, img.shape[1]))
    return [torch.cat(parts) for parts in out]


def _normalise(desc: torch.Tensor) -> torch.Tensor:
    """Per channel: minus the mean, divided by the standard deviation, over the whole set."""
    mean = desc.mean(dim=(0, 1, 2), keepdim=True)
    std = desc.std(dim=(0, 1, 2), keepdim=True).clamp_min(1e-8)
    return ((desc - mean) / std).reshape(desc.shape[0], -1)


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, directions: torch.Tensor,
                       chunk: int | None = None) -> torch.Tensor:
    """Mean over the columns of ``directions`` (D, K) (unit vectors) of the 1-D Wasserstein-1
    distance between the projections of the rows of ``a`` and ``b`` (both (M, D))."""
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"a and b must be (M, D) with the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if directions.ndim != 2 or directions.shape[0] != a.shape[1]:
        raise ValueError(f"directions must be (D={a.shape[1]}, K), got {tuple(directions.shape)}")
    k = directions.shape[1]
    if chunk is None:  # bound the two (M, chunk) projections to about 2**25 numbers each
        chunk = max(1, min(k, (1 << 25) // max(1, a.shape[0])))
    total = a.new_zeros(())
    for s in range(0, k, chunk):
        d = directions[:, s:s + chunk].T.contiguous()         # (chunk, D): sort along rows
        pa = torch.sort(d @ a.T, dim=1).values
        pb = torch.sort(d @ b.T, dim=1).values
        total = total + (pa - pb).abs().mean(dim=1).sum()
    return total / k


def swd(real, fake, *, patches: int = 128, directions: int = 512, repeats: int = 4, seed: int = 0,
        batch_size: int = 256, device: str | torch.device | None = None) -> SWDResult:
    """SWD ×10³ between image sets ``real`` and ``fake`` (see the module docstring).

    ``real``, ``fake``: (N, C, H, W) with the same shape, square, H >= 16 (a power of two gives the
    paper's levels; other sizes halve while the size stays even and >= 16); float in
    [-1, 1] or uint8 (the per-channel normalisation makes the value range irrelevant).
    ``seed`` fixes the patch positions and directions: the same inputs and seed give the same
    numbers. ``device``: where to compute (default: the inputs' device). ``batch_size``: images
    per pyramid batch (memory only; the result does not depend on it).
    """
    real = as_float_images(real, "real", min_size=MIN_RESOLUTION)
    fake = as_float_images(fake, "fake", min_size=MIN_RESOLUTION)
    if real.shape != fake.shape:
        raise ValueError(f"real and fake must have the same shape (N, C, H, W), got {tuple(real.shape)} "
                         f"and {tuple(fake.shape)}; use the same number of images in both sets")
    n, c, h, w = real.shape
    if h != w:
        raise ValueError(f"images must be square (H == W >= {MIN_RESOLUTION}), got {h}x{w}")
    patches = positive_int(patches, "patches")
    directions = positive_int(directions, "directions")
    repeats = positive_int(repeats, "repeats")
    batch_size = positive_int(batch_size, "batch_size")
    device = torch.device(device) if device is not None else real.device
    real, fake = real.to(device), fake.to(device)

    gen = torch.Generator().manual_seed(int(seed))
    sizes = _level_sizes(h)
    ys = [torch.randint(0, s - PATCH + 1, (n, patches), generator=gen).to(device) for s in sizes]
    xs = [torch.randint(0, s - PATCH + 1, (n, patches), generator=gen).to(device) for s in sizes]
    with torch.no_grad():
        desc_real = _descriptors(real, ys, xs, batch_size)
        desc_fake = _descriptors(fake, ys, xs, batch_size)
        levels = {}
        for size, dr, df in zip(sizes, desc_real, desc_fake):
            a, b = _normalise(dr), _normalise(df)
            dims = a.shape[1]
            value = 0.0
            for _ in range(repeats):
                dirs = torch.randn(dims, directions, generator=gen)
                dirs = (dirs / dirs.norm(dim=0, keepdim=True)).to(device)
                value += float(sliced_wasserstein(a, b, dirs))
            levels[size] = 1e3 * value / repeats
    return SWDResult(levels, sum(levels.values()) / len(levels))
