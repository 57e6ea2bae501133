"""Checkpoints: a killed training resumes and ends with the same model file."""

import os
import signal
import subprocess
import sys
import time

import pytest
from builders import scene_row

from geounet.errors import InvalidOptionError
from geounet.training import TrainConfig, pairs, train
from geounet.training.checkpoint import load_checkpoint

ARGS = ["--arch", "unet", "--base-channels", "8", "--depth", "2", "--epochs", "4",
        "--steps-per-epoch", "6", "--batch-size", "4", "--tile-size", "64", "--overlap", "16",
        "--lr", "5e-3", "--seed", "1", "--device", "cpu", "--augment", "full", "--workers", "1",
        "--name", "m", "--quiet"]


def _train(scene, labels, out, *extra):
    cmd = [sys.executable, "-m", "geounet", "train", str(scene), str(labels), "-o", str(out),
           *ARGS, *extra]
    return subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)


def test_killed_training_resumes_to_the_same_model_file(tmp_path):
    scenes, labels = scene_row(tmp_path, n=1)
    whole = _train(scenes[0], labels, tmp_path / "whole.safetensors")
    assert whole.wait(timeout=300) == 0, whole.stderr.read()
    run = _train(scenes[0], labels, tmp_path / "killed.safetensors")
    ckpt = tmp_path / "killed.train" / "checkpoint.pt"
    deadline = time.time() + 240
    while time.time() < deadline and run.poll() is None:
        if ckpt.exists() and load_checkpoint(ckpt)["epoch"] >= 2:
            break
        time.sleep(0.2)
    assert run.poll() is None, "finished before it could be killed"
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    assert not (tmp_path / "killed.safetensors").exists()
    assert 2 <= load_checkpoint(ckpt)["epoch"] < 4
    resumed = _train(scenes[0], labels, tmp_path / "killed.safetensors", "--resume", str(ckpt))
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    a = (tmp_path / "whole.safetensors").read_bytes()
    b = (tmp_path / "killed.safetensors").read_bytes()
    assert a == b  # byte for byte: weights and metadata
    lines = (tmp_path / "killed.train" / "metrics.jsonl").read_text().splitlines()
    assert [int(v.split('"epoch": ')[1].split(",")[0]) for v in lines] == [1, 2, 3, 4]


def test_resume_refuses_other_options(tmp_path):
    scenes, labels = scene_row(tmp_path, n=1)
    cfg = dict(arch="unet", arch_args={"base_channels": 8, "depth": 2}, epochs=1,
               steps_per_epoch=2, batch_size=2, tile_size_px=64, overlap_px=16, device="cpu",
               workers=0, tensorboard=False)
    r = train(pairs([str(scenes[0]), str(labels)]), None, tmp_path / "a.safetensors",
              TrainConfig(**cfg))
    with pytest.raises(InvalidOptionError, match=r"lr: 0.001 -> 0.01"):
        train(pairs([str(scenes[0]), str(labels)]), None, tmp_path / "b.safetensors",
              TrainConfig(**dict(cfg, lr=0.01)), resume=r.log_dir)
