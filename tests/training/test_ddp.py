"""Data-parallel training: two processes on the CPU (gloo) launched by torchrun."""

import subprocess
import sys

from builders import scene_row

import geounet
from geounet.config import PredictConfig
from geounet.models import read_metadata


def test_torchrun_two_processes_write_one_model_that_predicts(tmp_path):
    scenes, labels = scene_row(tmp_path, n=2)
    out = tmp_path / "ddp.safetensors"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
           "--standalone", "-m", "geounet", "train", str(scenes[0]), str(labels),
           str(scenes[1]), str(labels), "-o", str(out), "--arch", "unet", "--base-channels",
           "8", "--depth", "2", "--epochs", "2", "--steps-per-epoch", "4", "--batch-size", "2",
           "--tile-size", "64", "--overlap", "16", "--device", "cpu", "--workers", "0"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stderr.count("wrote ") == 1  # rank 0 alone reports and writes
    meta = read_metadata(out)
    assert meta.training["world_size"] == 2 and len(meta.training["history"]) == 2
    assert meta.training["history"][-1]["val_iou"] is not None  # rank 0 validated
    res = geounet.predict(scenes[0], tmp_path / "fp.geojson", model=out,
                          predict=PredictConfig(device="cpu", runtime="torch"))
    assert (tmp_path / "fp.geojson").exists() and res is not None
