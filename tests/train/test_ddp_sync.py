"""DistributedDataParallel on the CPU (gloo, two processes under torchrun): after a few steps the
parameters are identical on both ranks, and the ranks' data shards are disjoint and together
cover the epoch.

The data is a folder of 32 constant grey images, image i of value 8 i, so each rank can say which
images it was served. This file is also the worker: torchrun runs it as a script, and each rank
trains through the real entry point (``pygan.train.config.resolve`` and ``runner.run``) with a
trainer subclass that records the batches its data pipeline served and, when training ends,
writes its parameters to ``rank<r>.pt``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

IMAGES, LEVEL = 32, 8          # image i is a constant 16x16 grey of value LEVEL * i


def _write_images(folder) -> None:
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    for i in range(IMAGES):
        Image.new("L", (16, 16), LEVEL * i).save(os.path.join(folder, f"{i:02d}.png"))


def _index(batch: torch.Tensor) -> list[int]:
    """Which images a float batch in [-1, 1] holds (each image is constant)."""
    values = ((batch.flatten(1).mean(1) + 1) * 127.5).round().long()
    assert torch.equal(values % LEVEL, torch.zeros_like(values)), values
    return (values // LEVEL).tolist()


def _worker(out: str, argv: list[str]) -> int:
    from pygan.train import config, trainer_class
    from pygan.train.runner import run

    torch.set_num_threads(1)
    cfg = config.resolve(argv)

    class Recording(trainer_class(cfg["model"])):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.initial = self._params()       # after DDP's broadcast of rank 0's weights
            self.served: list[int] = []
            serve = self.batches.next
            self.batches.next = lambda n: self._record(serve(n))

        def _record(self, batch):
            self.served += _index(batch)
            return batch

        def _params(self):
            return {k: {n: p.detach().clone() for n, p in m.named_parameters()}
                    for k, m in self.nets.items()}

        def at_end(self, run_):
            super().at_end(run_)
            torch.save({"served": self.served, "step": self.step, "initial": self.initial,
                        "params": self._params()}, os.path.join(out, f"rank{self.rank}.pt"))

    return run(cfg, Recording)


def _torchrun(tmp_path, model: str, steps: int, *extra: str):
    data, run_dir = tmp_path / "data", tmp_path / "run"
    _write_images(data)
    argv = [model, "--out", str(run_dir), "--data", str(data), "--channels", "1", "--device", "cpu",
            "--resolution", "16", "--base-channels", "4", "--latent-dim", "8", "--batch-size", "8",
            "--max-steps", str(steps), "--eval-every", "0", "--progress", "false",
            "--tensorboard", "false", *extra]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           __file__, str(tmp_path), *argv]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]


@pytest.mark.parametrize("model,steps,extra", [
    # 2 steps x 2 critic batches x 4 images per rank
    ("wgan-gp", 2, ["--critic-steps", "2"]),
    # 4 steps x 1 batch x 4 images per rank; batch norm in both networks
    ("dcgan", 4, []),
])
def test_ranks_stay_identical_and_split_the_epoch(model, steps, extra, tmp_path):
    """Global batch 8 (4 per rank): each rank is served 16 images, its whole shard of the 32, so
    the two shards must be disjoint and together the epoch. Gradients are averaged by the manual
    all-reduce (for WGAN-GP after the penalty's double backward); the parameters must then be
    bit-identical on both ranks, and have moved from rank 0's initial weights."""
    r0, r1 = _torchrun(tmp_path, model, steps, *extra)
    assert r0["step"] == r1["step"] == steps
    a, b = r0["served"], r1["served"]
    assert len(a) == len(b) == IMAGES // 2
    assert len(set(a)) == len(a) and len(set(b)) == len(b), "a rank saw an image twice in one epoch"
    assert not set(a) & set(b), f"ranks share images {sorted(set(a) & set(b))}"
    assert set(a) | set(b) == set(range(IMAGES))
    for net in ("G", "D"):
        for name, p in r0["params"][net].items():
            assert torch.equal(r0["initial"][net][name], r1["initial"][net][name])
            assert torch.equal(p, r1["params"][net][name]), f"{net}.{name} differs between ranks"
        assert any(not torch.equal(p, r0["initial"][net][k]) for k, p in r0["params"][net].items())


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1], sys.argv[2:]))
