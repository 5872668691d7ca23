"""The command line: --help lists options with defaults, config files and overrides, bad input."""

import json

import pytest

from pygan.train import config


def test_help_lists_every_option_with_default(capsys):
    with pytest.raises(SystemExit):
        config.build_parser().parse_args(["progan", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--data", "--out", "--resolution", "--batch-size", "--max-steps", "--kimg", "--lr",
                 "--backend", "--device", "--amp", "--channels-last", "--seed", "--resume",
                 "--sample-every", "--checkpoint-every", "--fade-kimg", "--ema-beta"):
        assert flag in text
    assert "default: 0.001" in text and "32 on CPU, 64 on GPU" in text


def test_presets_follow_papers():
    wgan, gp, dc = config.preset("wgan", False), config.preset("wgan-gp", False), config.preset("dcgan", False)
    assert (wgan["lr"], wgan["clip"], wgan["critic_steps"]) == (5e-5, 0.01, 5)
    assert (gp["lr"], gp["betas"], gp["gp_lambda"], gp["critic_steps"]) == (1e-4, [0.0, 0.9], 10.0, 5)
    assert (dc["lr"], dc["betas"]) == (2e-4, [0.5, 0.999])
    cg = config.preset("cyclegan", True)
    assert (cg["lambda_cyc"], cg["lambda_id"], cg["pool_size"]) == (10.0, 0.5, 50)
    pg = config.preset("progan", True)
    assert (pg["resolution"], pg["fmap_base"], pg["fade_kimg"], pg["ema_beta"]) == (64, 8192, 600.0, 0.999)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_config_file_then_command_line(tmp_path, suffix):
    path = tmp_path / f"c{suffix}"
    data = {"lr": 0.01, "batch-size": 16, "seed": 7}
    path.write_text(json.dumps(data))      # JSON is valid YAML
    cfg = config.resolve(["dcgan", "--config", str(path), "--seed", "3", "--device", "cpu"])
    assert (cfg["lr"], cfg["batch_size"], cfg["seed"]) == (0.01, 16, 3)


def test_bad_values_name_the_option(tmp_path):
    with pytest.raises(ValueError, match="--amp must be one of"):
        config.resolve(["gan", "--amp", "fp8", "--device", "cpu"])
    with pytest.raises(ValueError, match="--resolution must be a power of two"):
        config.resolve(["progan", "--resolution", "48", "--device", "cpu"])
    path = tmp_path / "c.json"
    path.write_text('{"colour": 1}')
    with pytest.raises(ValueError, match="unknown option.*colour"):
        config.resolve(["gan", "--config", str(path), "--device", "cpu"])


def test_evaluation_options_are_checked():
    cfg = config.resolve(["progan", "--device", "cpu"])
    assert (cfg["eval_every"], cfg["eval_metrics"], cfg["best_metric"]) == (20_000, "swd,fid", "swd")
    with pytest.raises(ValueError, match="--eval-metrics: metrics must be a comma-separated subset"):
        config.resolve(["gan", "--eval-metrics", "fid,is", "--device", "cpu"])
    with pytest.raises(ValueError, match="--best-metric recall needs 'pr' in --eval-metrics"):
        config.resolve(["gan", "--best-metric", "recall", "--device", "cpu"])
    with pytest.raises(ValueError, match="--best-metric 'psnr_AtoB' is not a result"):
        config.resolve(["dcgan", "--best-metric", "psnr_AtoB", "--device", "cpu"])
    with pytest.raises(ValueError, match="--eval-every must be a number of images >= 0"):
        config.resolve(["gan", "--eval-every", "-1", "--device", "cpu"])
    assert config.resolve(["cyclegan", "--device", "cpu"])["best_metric"] == "psnr_AtoB"
    with pytest.raises(FileNotFoundError, match="--inception-weights: no file nowhere.pth.*pass its path"):
        config.resolve(["gan", "--inception-weights", "nowhere.pth", "--device", "cpu"])
