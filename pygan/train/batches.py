"""Minibatches in a reproducible, resumable order, sharded across data-parallel ranks.

Each epoch is one permutation of the data set drawn from a dedicated ``torch.Generator`` seeded
with the run's seed (the same on every rank); rank r of W takes every W-th index of it, starting
at r, so the ranks see disjoint shards. ``state_dict()`` holds the generator's state before the epoch's
permutation was drawn and the position in it: restoring it continues the exact same order after a resume. Images are
read straight from a dataset's uint8 ``images`` tensor when it has one (bundled sets, the
multi-resolution cache) and item by item otherwise (folders).
"""

from __future__ import annotations

import torch

from ..data import to_float


class Batches:
    def __init__(self, dataset, seed: int, rank: int = 0, world_size: int = 1) -> None:
        if len(dataset) < world_size:
            raise ValueError(f"the data set holds {len(dataset)} images, fewer than the "
                             f"{world_size} ranks")
        self.dataset = dataset
        self.rank, self.world_size = rank, world_size
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch = 0
        self.position = 0
        self.order = self._new_order()

    def _new_order(self) -> torch.Tensor:
        # The generator's state before the draw is what a checkpoint stores: every rank can then
        # redraw the same permutation and take its own shard of it.
        self._order_state = self.generator.get_state()
        perm = torch.randperm(len(self.dataset), generator=self.generator)
        return perm[self.rank::self.world_size]

    def set_dataset(self, dataset) -> None:
        """Serve the same images from another dataset (ProGAN's next resolution of the cache)."""
        if len(dataset) != len(self.dataset):
            raise ValueError("set_dataset needs a data set of the same length")
        self.dataset = dataset

    def next(self, batch_size: int) -> torch.Tensor:
        """The next ``batch_size`` images of this rank's shard, float in [-1, 1]; an epoch's
        remainder smaller than a batch is skipped."""
        if batch_size > len(self.order):
            raise ValueError(f"batch size {batch_size} per rank exceeds the {len(self.order)} "
                             "images of this rank's shard")
        if self.position + batch_size > len(self.order):
            self.epoch += 1
            self.position = 0
            self.order = self._new_order()
        index = self.order[self.position:self.position + batch_size]
        self.position += batch_size
        images = getattr(self.dataset, "images", None)
        if isinstance(images, torch.Tensor) and images.dtype == torch.uint8:
            return to_float(images[index])
        return torch.stack([self.dataset[int(i)][0] for i in index])

    def state_dict(self) -> dict:
        """The same on every rank: the epoch's generator state, the epoch and the position."""
        return {"order_state": self._order_state.clone(), "epoch": self.epoch,
                "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["order_state"])
        self.order = self._new_order()
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
