"""The training command line, as a newcomer meets it: a bad configuration ends in one line naming
the option (argparse's ``prog: error: ...`` form, exit code 2) before any work starts, never in
a traceback; a good one says first where the run lives and how to watch and resume it."""

from __future__ import annotations

import os
import shlex

import pytest
import torch

from pygan.train import checkpoint, main, runner


def _expect_one_line_error(capsys, argv, option, out):
    code = main(argv)
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2, captured.err
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("python -m pygan.train: error: ")
    assert option in lines[0], lines[0]
    assert "Traceback" not in captured.err + captured.out
    return lines[0]


BAD = [  # (model, arguments, the option the message must name)
    ("dcgan", ["--resolution", "8"], "--resolution"),
    ("lsgan", ["--resolution", "24"], "--resolution"),
    ("wgan", ["--resolution", "8"], "--resolution"),
    ("wgan-gp", ["--resolution", "48"], "--resolution"),
    ("gan", ["--resolution", "0"], "--resolution"),
    ("gan", ["--amp", "fp8"], "--amp"),
    ("dcgan", ["--lr", "-0.001"], "--lr"),
    ("lsgan", ["--betas", "1.2,0.9"], "--betas"),
    ("gan", ["--latent-dim", "0"], "--latent-dim"),
    ("gan", ["--width", "0"], "--width"),
    ("dcgan", ["--base-channels", "0"], "--base-channels"),
    ("wgan", ["--clip", "-0.01"], "--clip"),
    ("wgan", ["--critic-steps", "0"], "--critic-steps"),
    ("wgan-gp", ["--gp-lambda", "-10"], "--gp-lambda"),
    ("wgan-gp", ["--critic-norm", "batch"], "--critic-norm"),
    ("gan", ["--channels", "2"], "--channels"),
    ("gan", ["--backend", "fastest"], "--backend"),
    ("gan", ["--device", "tpu"], "--device"),
    ("gan", ["--batch-size", "-4"], "--batch-size"),
    ("gan", ["--data", "no-such-set-or-folder"], "--data"),
    ("gan", ["--resolution", "8", "--eval-every", "8", "--eval-metrics", "msssim", "--best-metric",
             "msssim"], "--best-metric"),
]


@pytest.mark.parametrize("model,args,option", BAD, ids=[f"{m}{''.join(a)}" for m, a, _ in BAD])
def test_bad_option_is_one_line_naming_it(model, args, option, tmp_path, capsys):
    out = tmp_path / "run"
    # bounded: were a check missing, the run would stop after a step rather than train for long
    argv = [model, "--out", str(out), "--device", "cpu", "--max-steps", "1", "--progress", "false",
            "--tensorboard", "false", "--eval-every", "0", *args]
    _expect_one_line_error(capsys, argv, option, out)
    assert not out.exists(), "nothing may be written before the configuration is known to be good"


def test_batch_not_divisible_by_the_processes(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")       # as torchrun --nproc-per-node 2 sets it
    out = tmp_path / "run"
    line = _expect_one_line_error(capsys, ["wgan-gp", "--out", str(out), "--batch-size", "9",
                                                        "--max-steps", "1", "--device", "cpu"],
                                  "--batch-size", out)
    assert "2 processes" in line
    assert not out.exists()


def test_data_folder_without_images(tmp_path, capsys):
    empty = tmp_path / "photos-to-come"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "README.txt").write_text("not an image")
    out = tmp_path / "run"
    line = _expect_one_line_error(capsys, ["dcgan", "--out", str(out), "--data", str(empty),
                                         "--max-steps", "1", "--device", "cpu"], "--data", out)
    assert "holds no images" in line and str(empty) in line
    assert not out.exists()


def test_data_folder_of_unreadable_images(tmp_path, capsys, tiny):
    """Files named like images that are not: found only when the data set is built, still one
    line naming --data (the set-up errors of runner.run), and no run directory."""
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.png").write_bytes(b"not a png")
    out = tmp_path / "run"
    with pytest.warns(UserWarning, match="unreadable"):
        line = _expect_one_line_error(capsys, tiny("gan", out, "--data", str(bad), "--max-steps", "1"),
                                      "--data", out)
    assert "no readable images" in line
    assert not (out / "checkpoints").exists()


def test_out_holding_checkpoints_and_resume_without_one(tmp_path, capsys):
    out = tmp_path / "run"
    checkpoint.save({"step": 1}, str(out), 1, keep=1)
    _expect_one_line_error(capsys, ["gan", "--out", str(out)], "--resume", out)
    empty = tmp_path / "empty"
    empty.mkdir()
    _expect_one_line_error(capsys, ["gan", "--resume", str(empty)], "--resume", empty)


def test_run_says_where_it_lives_before_the_progress_bar(tmp_path, capsys, monkeypatch, tiny):
    """Before the Monitor (which owns the progress bar) exists, the run has printed its
    directory, the TensorBoard command for its logs and the exact command that resumes it; that
    command then continues the run."""
    out = tmp_path / "run"
    at_monitor = []
    real_monitor = runner.Monitor

    def monitor(*args, **kwargs):
        at_monitor.append(capsys.readouterr().out)
        return real_monitor(*args, **kwargs)

    monkeypatch.setattr(runner, "Monitor", monitor)
    assert main(tiny("gan", out, "--max-steps", "2", "--tensorboard", "true", "--eval-every", "0")) == 0
    printed = at_monitor[0].splitlines()
    run_dir = os.path.abspath(out)
    assert printed[0].startswith(f"run directory: {run_dir}")
    tb = [line for line in printed if "tensorboard --logdir" in line]
    assert len(tb) == 1
    logdir = shlex.split(tb[0].split(":", 1)[1])[-1]
    assert os.path.isdir(logdir) and any(f.startswith("events.") for f in os.listdir(logdir))
    resume = [line.split(":", 1)[1].strip() for line in printed if line.startswith("resume it:")]
    assert resume == [f"python -m pygan.train gan --resume {run_dir}"]
    argv = shlex.split(resume[0])
    assert argv[:3] == ["python", "-m", "pygan.train"]
    assert main(argv[3:] + ["--max-steps", "3", "--progress", "false"]) == 0
    assert torch.load(checkpoint.latest(str(out)), weights_only=True)["step"] == 3


def test_resume_command_under_torchrun_and_odd_paths():
    cfg = {"model": "wgan-gp", "out": "/tmp/my runs/a'b"}
    cmd = runner.resume_command(cfg, world_size=2)
    assert cmd.startswith("torchrun --nproc-per-node 2 -m pygan.train wgan-gp --resume ")
    assert shlex.split(cmd)[-1] == "/tmp/my runs/a'b"
    text = runner.where_it_lives({**cfg, "tensorboard": False, "eval_every": 0}, 2)
    assert "tensorboard" not in text and cmd in text
