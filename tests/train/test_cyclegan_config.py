"""CycleGAN's presets (paper, official, CPU/GPU defaults) and their sources in --help; bad
configurations end in one line naming the option before any work starts; trainA/trainB/testA/
testB folders train on train*, and translate/eval use test*."""

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from pygan import translate
from pygan.metrics import cli as eval_cli
from pygan.models.cyclegan import ResnetBlock, min_resolution
from pygan.train import config, main, trainer_class
from pygan.train.loop_cyclegan import generator_settings


def _image(path, seed, size=30):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def test_help_names_the_paper_preset_and_each_source(capsys):
    with pytest.raises(SystemExit):
        config.build_parser().parse_args(["cyclegan", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--preset paper: Zhu et al. 2017" in text
    assert "--preset official: the authors' PyTorch code" in text
    assert "Without --preset: on a GPU the official preset" in text
    for flag in ("--ngf", "--ndf", "--preprocess", "--load-size", "--no-flip", "--n-epochs",
                 "--n-epochs-decay", "--lr-decay", "--num-blocks"):
        assert flag in text


def test_presets_paper_official_and_defaults():
    paper = config.resolve(["cyclegan", "--device", "cpu", "--preset", "paper"])
    official = config.resolve(["cyclegan", "--device", "cpu", "--preset", "official"])
    gpu = config.preset("cyclegan", True)
    shared = ("resolution", "batch_size", "lr", "betas", "lambda_cyc", "pool_size", "ngf", "ndf",
              "n_epochs", "n_epochs_decay", "preprocess", "flip", "load_size")
    assert [paper[k] for k in shared] == [official[k] for k in shared] == \
        [256, 1, 2e-4, [0.5, 0.999], 10.0, 50, 64, 64, 100, 100, "resize_and_crop", True, None]
    # where they differ: identity loss (the paper: painting->photo only) and the decay's grain
    assert (paper["lambda_id"], paper["lr_decay"]) == (0.0, "iteration")
    assert (official["lambda_id"], official["lr_decay"]) == (0.5, "epoch")
    # the GPU default is the official recipe, 9 residual blocks at 256x256
    assert all(gpu[k] == official[k] for k in shared + ("lambda_id", "lr_decay", "num_blocks"))
    assert generator_settings(gpu) == (64, 9) and generator_settings({**gpu, "resolution": 128}) == (64, 6)
    cpu = config.preset("cyclegan", False)
    assert (cpu["resolution"], cpu["ngf"], cpu["ndf"], cpu["lambda_id"], cpu["lr_decay"]) == (32, 16, 16, 0.5,
                                                                                            "epoch")


def test_smallest_resolution_comes_from_the_architecture():
    assert min_resolution() == 24
    from pygan.models.cyclegan import PatchDiscriminator, ResnetGenerator

    D, G = PatchDiscriminator(3, 2), ResnetGenerator(3, 3, 2, 1)
    assert D(torch.zeros(1, 3, 24, 24)).shape == (1, 1, 1, 1) and G(torch.zeros(1, 3, 24, 24)).shape[-1] == 24
    with pytest.raises(ValueError, match="more than (1|one) spatial element"):
        D(torch.zeros(1, 3, 20, 20))            # 20 -> 10 -> 5 -> 2 -> 1: a 1x1 instance norm


@pytest.mark.parametrize("args, message", [
    (["--resolution", "16"], "--resolution must be a multiple of 4 and at least 24 for cyclegan"),
    (["--resolution", "30"], "--resolution must be a multiple of 4"),
    (["--resolution", "32", "--load-size", "30"], "--load-size 30 is smaller than the 32x32 crop"),
    (["--preprocess", "scale_width"], "--preprocess scale_width keeps each image's own size"),
    (["--preprocess", "jitter"], "--preprocess must be one of resize_and_crop, none"),
    (["--n-epochs", "-1"], "--n-epochs must be an integer >= 0"),
    (["--n-epochs", "0", "--n-epochs-decay", "0"], "at least 1 epoch"),
    (["--ngf", "0"], "--ngf must be an integer >= 1"),
    (["--lr-decay", "cosine"], "--lr-decay must be epoch or iteration"),
    (["--lambda-id", "-0.5"], "--lambda-id must be a number >= 0"),
    (["--preset", "fast"], "--preset 'fast' is not a preset of cyclegan"),
    (["--data", "mnist"], "--data 'mnist' is one domain"),
])
def test_bad_options_end_in_one_line_naming_the_option(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    assert main(["cyclegan", "--device", "cpu", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err, err
    assert not out.exists()                     # nothing was started


@pytest.mark.parametrize("make, extra, message", [
    (lambda r: (r / "notes.txt").write_text("x"), [], "--data: two-domain data needs trainA/ and trainB/"),
    (lambda r: _image(r / "trainA" / "1.png", 0), [], "--data: .* has trainA/ but no trainB/"),
    (lambda r: (_image(r / "trainA" / "1.png", 0), _image(r / "trainB" / "1.png", 1),
                _image(r / "testB" / "1.png", 2)), [], "has testB/ but no testA/"),
    (lambda r: (r / "A").mkdir(), ["--data-b", "B"], "--data: .* holds no images"),
])
def test_bad_data_folders_end_in_one_line(tmp_path, capsys, make, extra, message):
    root = tmp_path / "data"
    root.mkdir()
    make(root)
    data = str(root / "A") if extra else str(root)
    extra = [str(root / x) if not x.startswith("--") else x for x in extra]
    assert main(["cyclegan", "--device", "cpu", "--out", str(tmp_path / "run"), "--data", data, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    import re
    assert re.search(message, err), err


def test_split_folder_trains_on_train_and_translates_and_scores_test(tmp_path, capsys):
    root = tmp_path / "horse2zebra"
    for split, n in (("train", 3), ("test", 2)):
        for d, seed in (("A", 0), ("B", 50)):
            for i in range(n + (d == "B")):
                _image(root / f"{split}{d}" / f"{i}.png", seed + 10 * (split == "test") + i)
    run = tmp_path / "run"
    args = ["cyclegan", "--device", "cpu", "--out", str(run), "--data", str(root), "--resolution", "24",
            "--ngf", "2", "--ndf", "2", "--num-blocks", "1", "--max-steps", "2", "--eval-every", "0",
            "--progress", "false", "--tensorboard", "false", "--best-metric", "fid", "--eval-n", "2"]
    cfg = config.resolve(args)
    T = trainer_class("cyclegan")(cfg, torch.device("cpu"), 0, 1)
    assert (len(T.train_domains.a), len(T.train_domains.b)) == (3, 4)       # trainA, trainB
    assert (len(T.domains.a), len(T.domains.b)) == (2, 3)                   # testA, testB
    assert T.steps_per_epoch == 4
    assert main(args) == 0
    out = tmp_path / "translated"
    assert translate.main([str(run), "--out", str(out), "--direction", "BtoA"]) == 0
    assert sorted(os.listdir(out)) == ["0.png", "1.png", "2.png"]           # testB's three images
    assert Image.open(out / "0.png").size == (24, 24)
    report = tmp_path / "eval.json"
    assert eval_cli.main([str(run), "--metrics", "fid", "--n", "2", "--out", str(report)]) == 0
    record = json.loads(report.read_text())
    assert record["real"].endswith("testA|testB") and "fid" in record["results"]
    # a run on the bundled emoji has no test folders: translate says to give INPUT
    capsys.readouterr()
    bundled = tmp_path / "bundled"
    assert main(["cyclegan", "--device", "cpu", "--out", str(bundled), "--resolution", "24", "--ngf", "2",
                 "--ndf", "2", "--num-blocks", "1", "--max-steps", "1", "--eval-every", "0",
                 "--progress", "false", "--tensorboard", "false"]) == 0
    assert translate.main([str(bundled), "--out", str(out)]) == 2
    assert "give INPUT" in capsys.readouterr().err


def test_num_blocks_follow_the_paper_rule_unless_given():
    from pygan.models.cyclegan import ResnetGenerator

    cfg = config.preset("cyclegan", True)
    for r, blocks in ((128, 6), (256, 9), (512, 9)):
        ngf, n = generator_settings({**cfg, "resolution": r})
        G = ResnetGenerator(3, 3, ngf, n)
        assert sum(isinstance(m, ResnetBlock) for m in G.modules()) == blocks
    assert generator_settings({**cfg, "num_blocks": 3}) == (64, 3)
    assert generator_settings({"base_channels": 8, "num_blocks": 2, "resolution": 32}) == (8, 2)  # old runs
