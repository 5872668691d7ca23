"""Two gloo processes under torchrun train with data sharded per rank; rank 0 writes."""

import json
import os
import subprocess
import sys

import torch

from pygan.train import checkpoint


def test_two_process_gloo_run(tmp_path, tiny_settings):
    TINY, QUIET = tiny_settings
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
           "--master-port", "29517", "-m", "pygan.train", "wgan-gp", "--out", str(run),
           *TINY["wgan-gp"], *QUIET, "--max-steps", "2", "--device", "cpu"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    state = torch.load(checkpoint.latest(str(run)), weights_only=True)
    assert state["world_size"] == 2 and len(state["rng"]) == 2
    assert state["images_seen"] == 2 * 2 * 8        # 2 steps x 2 critic batches x global 8
    assert not torch.equal(state["rng"][0], state["rng"][1])    # ranks draw different noise
    # the end-of-run evaluation ran on rank 0 alone (its metrics must not wait for rank 1)
    rows = (run / "eval.jsonl").read_text().splitlines()
    assert len(rows) == 1 and "fid" in json.loads(rows[0])["results"]
    assert (run / "checkpoints" / "best.pt").is_file()
