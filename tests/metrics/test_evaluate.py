import json
import math

import pytest
import torch

from pygan.metrics.cli import main
from pygan.metrics.evaluate import METRICS, evaluate, evaluate_images, parse_metrics

SMALL = {"swd_options": {"patches": 16, "directions": 32, "repeats": 1}, "msssim_pairs": 16, "kid_subsets": 5}


def test_parse_metrics():
    assert parse_metrics("swd, FID,swd") == ("swd", "fid")
    assert parse_metrics(["pr"]) == ("pr",)
    with pytest.raises(ValueError, match="unknown: is"):
        parse_metrics("swd,is")
    with pytest.raises(ValueError, match="metrics must be"):
        parse_metrics("")


def test_evaluate_images_all_metrics_rank_noise_worse(sets):
    a = evaluate_images(sets["real"], sets["other"], METRICS, **SMALL)
    b = evaluate_images(sets["real"], sets["noisy"], METRICS, **SMALL)
    assert set(a) == {"swd_32", "swd_16", "swd", "msssim", "msssim_real", "fid", "kid", "kid_std",
                      "precision", "recall", "density", "coverage"}
    assert all(math.isfinite(v) for v in a.values())
    for key in ("swd", "fid", "kid"):
        assert a[key] < b[key], key
    assert a["coverage"] > b["coverage"]


def test_evaluate_with_a_generator_function(emoji32):
    from pygan.data import TensorImageDataset

    data = TensorImageDataset(emoji32[:200])
    source = emoji32[200:400].float().div(127.5).sub(1)
    pos = [0]

    def generator_fn(b):   # "generates" other real emoji
        out = source[pos[0]:pos[0] + b]
        pos[0] += b
        return out

    r = evaluate(generator_fn, data, "fid,swd", n=48, batch_size=20, **SMALL)
    assert pos[0] == 48 and set(r) == {"fid", "swd", "swd_32", "swd_16"}
    with pytest.raises(ValueError, match=r"generator_fn\(4\) must return a tensor"):
        evaluate(lambda b: torch.zeros(b + 1, 3, 32, 32), data, "fid", n=4)
    with pytest.raises(ValueError, match="n=500 is more than the 200 images"):
        evaluate(generator_fn, data, "fid", n=500)


def _dcgan_run(tmp_path):
    from pygan.models import dcgan
    from pygan.train import checkpoint as ckpt

    G = dcgan.Generator(32, 16, 1, 8)
    cfg = {"model": "dcgan", "resolution": 32, "latent_dim": 16, "base_channels": 8, "data": "mnist"}
    run = tmp_path / "run"
    ckpt.save({"config": cfg, "nets": {"G": G.state_dict()}, "images_seen": 0, "step": 1}, str(run), 1, 1)
    return run


def test_cli_on_a_dcgan_checkpoint(tmp_path, capsys):
    run = _dcgan_run(tmp_path)
    assert main([str(run), "--metrics", "swd,fid,pr", "--n", "32"]) == 0
    out = capsys.readouterr().out
    assert "fid" in out and "coverage" in out
    record = json.load(open(run / "eval" / "step-00000001.json"))
    assert record["real"] == "mnist" and record["features"] == "bundled"
    assert set(record["results"]) >= {"swd", "swd_32", "swd_16", "fid", "precision"}


def test_cli_errors(tmp_path, capsys):
    run = _dcgan_run(tmp_path)
    assert main([str(run), "--metrics", "fid", "--inception-weights", str(tmp_path / "missing.pth")]) == 2
    assert "--inception-weights PATH" in capsys.readouterr().err
    assert main([str(tmp_path / "nothing"), "--metrics", "fid"]) == 2
    assert "no run directory or checkpoint file" in capsys.readouterr().err
    assert main([str(run), "--metrics", "bleu"]) == 2
