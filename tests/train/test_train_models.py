"""Every model trains a few steps on bundled data at tiny widths on the CPU, writes grids and a
checkpoint that loads with weights_only=True; generate and translate turn them into images."""

import json
import math
import os

import pytest
import torch
from PIL import Image

from pygan import generate, translate
from pygan.train import checkpoint, main


def _check_evaluation(run, model: str, last_step: int) -> None:
    """The run ended with an evaluation: a row in eval.jsonl with finite scores, and best.pt."""
    rows = [json.loads(line) for line in (run / "eval.jsonl").read_text().splitlines()]
    assert rows and rows[-1]["step"] == last_step
    results = rows[-1]["results"]
    expected = {"fid", "psnr_AtoB", "ssim_AtoB", "psnr_BtoA", "ssim_BtoA"} if model == "cyclegan" \
        else {"fid"} if model == "progan" else {"fid", "swd"}
    assert expected <= set(results) and all(math.isfinite(v) for v in results.values())
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    assert best["evaluation"]["best_step"] == best["step"]
    assert any(r["best"] and r["step"] == best["step"] for r in rows)


@pytest.mark.parametrize("model", ["gan", "dcgan", "lsgan", "wgan", "wgan-gp", "cyclegan", "progan"])
def test_model_trains_and_generates(model, tmp_path, tiny):
    run = tmp_path / "run"
    # progan's tiny run ends at 8x8, below SWD's 16x16: the best checkpoint goes by FID there
    length = ["--best-metric", "fid"] if model == "progan" else ["--max-steps", "3"]
    assert main(tiny(model, run, *length, "--sample-every", "2", "--checkpoint-every", "2")) == 0
    path = checkpoint.latest(str(run))
    state = torch.load(path, weights_only=True)
    assert state["config"]["model"] == model
    for sd in state["nets"].values():
        assert all(torch.isfinite(v).all() for v in sd.values() if v.is_floating_point())
    _check_evaluation(run, model, state["step"])
    grids = sorted(os.listdir(run / "grids"))
    assert len(grids) >= 2
    assert (run / "config.json").is_file()
    if model == "progan":
        assert state["step"] == 12 and state["images_seen"] == 48
        assert {"final-r004.png", "final-r008.png"} <= set(grids)
        assert set(checkpoint.resolution_checkpoints(str(run))) == {4, 8}
    else:
        assert state["step"] == 3

    out = tmp_path / "out.png"
    if model == "cyclegan":
        source = run / "grids" / grids[0]
        assert translate.main([str(run), str(source), "--out", str(out), "--direction", "BtoA"]) == 0
        assert Image.open(out).size == (32, 32)
        folder_out = tmp_path / "translated"
        assert translate.main([str(run), str(run / "grids"), "--out", str(folder_out)]) == 0
        assert len(os.listdir(folder_out)) == len(grids)
        assert generate.main([str(run), "--out", str(out)]) == 2     # clear error, not a crash
    else:
        assert generate.main([str(run), "--n", "9", "--out", str(out)]) == 0
        w, h = Image.open(out).size
        size = 8 if model == "progan" else 16
        assert w == h == 3 * size + 4          # 3x3 grid with 1-pixel padding
        if model == "progan":
            assert generate.main([str(run), "--n", "4", "--resolution", "4", "--out", str(out)]) == 0
            # res-0004.pt is written as 8x8 starts fading in; it still draws its own 4x4
            res4 = torch.load(run / "checkpoints" / "res-0004.pt", weights_only=True)
            _, phase, _ = generate.build_generator(res4)
            assert (phase.resolution, phase.alpha) == (4, 1.0)
            assert Image.open(out).size == (2 * 4 + 3,) * 2
            assert generate.main([str(run), "--n", "6", "--interpolate", "3", "--out", str(out)]) == 0
            assert Image.open(out).size == (3 * 8 + 4, 2 * 8 + 3)


def test_evaluation_every_n_images_logs_to_tensorboard(tmp_path, tiny_settings):
    """--eval-every 16 with batch 8: an evaluation every second step, each logged as eval/<key>
    scalars in TensorBoard and a row of eval.jsonl."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    TINY, _ = tiny_settings
    run = tmp_path / "run"
    assert main(["dcgan", "--out", str(run), *TINY["dcgan"], "--progress", "false", "--max-steps", "4",
                 "--eval-every", "16", "--eval-n", "16", "--eval-metrics", "swd,fid,kid,pr,msssim"]) == 0
    rows = [json.loads(line) for line in (run / "eval.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4]
    assert {"swd", "fid", "kid", "precision", "recall", "density", "coverage", "msssim"} <= set(rows[0]["results"])
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"eval/fid", "eval/swd", "eval/kid", "eval/coverage"} <= tags
    assert [e.step for e in events.Scalars("eval/fid")] == [2, 4]


@pytest.mark.parametrize("model,amp", [("progan", "bf16"), ("wgan-gp", "bf16"), ("wgan-gp", "fp16"),
                                       ("cyclegan", "bf16")])
def test_mixed_precision_and_channels_last(model, amp, tmp_path, tiny):
    """--amp bf16/fp16 with --channels-last true trains (autocast on the CPU; fp16 with the
    GradScaler, the gradient penalty on unscaled gradients) and keeps float32 weights."""
    run = tmp_path / "run"
    length = ["--eval-every", "0"] + ([] if model == "progan" else ["--max-steps", "2"])
    assert main(tiny(model, run, *length, "--amp", amp, "--channels-last", "true")) == 0
    state = torch.load(checkpoint.latest(str(run)), weights_only=True)
    assert state["config"]["amp"] == amp and state["config"]["channels_last"] is True
    for sd in state["nets"].values():
        for v in sd.values():
            if v.is_floating_point():
                assert v.dtype == torch.float32 and torch.isfinite(v).all()
    if amp == "fp16":
        assert state["scaler"] and state["scaler"]["scale"] > 0
