"""What a person watching a run sees: the progress bar, TensorBoard scalars and images, and PNG
grids in the run directory. Only rank 0 reports; the other ranks get a silent monitor.

TensorBoard is optional: without the ``tensorboard`` package the scalars are skipped with one
notice (the PNG grids and the progress bar still work).
"""

from __future__ import annotations

import os
import sys
import time

import torch
from torchvision.utils import make_grid, save_image
from tqdm.auto import tqdm


def grid(images: torch.Tensor) -> torch.Tensor:
    """A square-ish grid of images in [-1, 1] (clamped), as a float (3 or 1, H, W) in [0, 1]."""
    images = images.detach().float().cpu().clamp(-1, 1).add(1).div(2)
    nrow = max(1, int(len(images) ** 0.5))
    return make_grid(images, nrow=nrow, padding=1, pad_value=1.0)


class Monitor:
    def __init__(self, run_dir: str, total: int, unit: str, initial: int, enabled: bool,
                 tensorboard: bool, progress: bool) -> None:
        self.run_dir = run_dir
        self.enabled = enabled
        self.grid_dir = os.path.join(run_dir, "grids")
        self.writer = None
        self.bar = None
        self._last_time = time.perf_counter()
        self._last_images = None
        if not enabled:
            return
        os.makedirs(self.grid_dir, exist_ok=True)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.writer = SummaryWriter(os.path.join(run_dir, "tensorboard"))
            except ImportError:
                print("TensorBoard logging is off: the tensorboard package is not installed "
                      "(pip install tensorboard)", file=sys.stderr)
        if progress:
            self.bar = tqdm(total=total, initial=initial, unit=unit, dynamic_ncols=True,
                            smoothing=0.1)

    def images_per_second(self, images_seen: int) -> float:
        now = time.perf_counter()
        rate = 0.0
        if self._last_images is not None and now > self._last_time:
            rate = (images_seen - self._last_images) / (now - self._last_time)
        self._last_time, self._last_images = now, images_seen
        return rate

    def update(self, n: int, postfix: dict) -> None:
        if self.bar is not None:
            self.bar.update(n)
            self.bar.set_postfix(postfix, refresh=False)

    def scalars(self, values: dict, step: int) -> None:
        if self.writer is not None:
            for name, value in values.items():
                self.writer.add_scalar(name, value, step)

    def save_grid(self, images: torch.Tensor, name: str, step: int, tag: str = "samples") -> str:
        """Write ``grids/<name>.png`` (and the grid to TensorBoard); returns the path."""
        g = grid(images)
        path = os.path.join(self.grid_dir, f"{name}.png")
        if self.enabled:
            save_image(g, path)
            if self.writer is not None:
                self.writer.add_image(tag, g, step)
        return path

    def write(self, message: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(message)
        else:
            print(message, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
