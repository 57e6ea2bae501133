"""``geounet import`` and ``predict --model`` on torch models of other tools."""

import json

import geopandas as gpd
import pytest
import torch
from builders import random_scene

from geounet.cli import cli
from geounet.models import read_metadata

TINY = dict(encoder_name="resnet18", encoder_depth=3, decoder_channels=(16, 8, 4))


def run(runner, *args):
    return runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)


def one_line_error(result, *needles):
    assert result.exit_code != 0
    lines = [ln for ln in result.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def smp_folder(tmp_path):
    import segmentation_models_pytorch as smp

    torch.manual_seed(0)
    smp.create_model("unet", encoder_weights=None, in_channels=3, classes=1,
                     **TINY).save_pretrained(tmp_path / "smp_model")
    return tmp_path / "smp_model"


@pytest.fixture
def scene(tmp_path):
    return random_scene(tmp_path / "s.tif", 96, 80, count=3)


def test_predict_refuses_a_folder_without_statistics_and_import_fixes_it(
        tmp_path, runner, smp_folder, scene):
    r = run(runner, "predict", scene, "-o", tmp_path / "a.geojson", "--model", smp_folder)
    line = one_line_error(r, "lacks the band statistics", "geounet import")
    command = line.split("add them with: ")[1].split(" (or")[0]
    assert command.startswith(f"geounet import {smp_folder} -o smp_model.safetensors")
    out = tmp_path / "m.safetensors"
    r = run(runner, "import", smp_folder, "-o", out, "--stats-from", scene, "--classes",
            "background,building", "--gsd", "0.5", "--tile-size", "64", "--license", "MIT")
    assert r.exit_code == 0, r.output
    meta = read_metadata(out)
    assert meta.classes == ["background", "building"] and meta.gsd_m == 0.5
    assert meta.tile_size_px == 64 and meta.training["imported_from"]["license"] == "MIT"
    assert meta.training["imported_from"]["stats_from"] == str(scene)
    r = run(runner, "predict", scene, "-o", tmp_path / "fp.gpkg", "--model", out, "-q")
    assert r.exit_code == 0, r.output
    assert set(gpd.read_file(tmp_path / "fp.gpkg").columns) >= {"class_name", "score"}
    r = run(runner, "import", smp_folder, "-o", out, "--stats-from", scene)
    one_line_error(r, "exists")  # no --overwrite


def test_predict_runs_a_torchgeo_checkpoint_with_a_sidecar(tmp_path, runner, scene):
    import segmentation_models_pytorch as smp

    net = smp.Unet(encoder_name="resnet18", encoder_weights=None, in_channels=3, classes=3)
    ckpt = tmp_path / "task.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in net.state_dict().items()},
                "hyper_parameters": {"model": "unet", "backbone": "resnet18", "in_channels": 3,
                                     "num_classes": 3, "loss": "ce", "ignore_index": None}},
               ckpt)
    (tmp_path / "task.geounet.json").write_text(json.dumps(
        {"band_mean": [500, 500, 500], "band_std": [250, 250, 250],
         "classes": ["water", "forest", "urban"], "tile_size_px": 64, "overlap_px": 16}))
    r = run(runner, "predict", scene, "-o", tmp_path / "lc.geojson", "--model", ckpt,
            "--mask-out", tmp_path / "m.tif", "-q")
    assert r.exit_code == 0, r.output
    assert set(gpd.read_file(tmp_path / "lc.geojson")["class_name"]) <= {
        "water", "forest", "urban"}


def test_import_state_dict_and_refusals(tmp_path, runner, scene):
    torch.save(torch.nn.Conv2d(3, 1, 1), tmp_path / "whole.pth")
    one_line_error(run(runner, "import", tmp_path / "whole.pth", "-o", tmp_path / "x.safetensors"),
                   "torch.nn.modules.conv.Conv2d", "never runs code")
    from geounet.models import build_model

    torch.save(build_model("smp", 3, 1, arch="unet", **TINY).state_dict(), tmp_path / "w.pth")
    one_line_error(run(runner, "import", tmp_path / "w.pth", "-o", tmp_path / "x.safetensors"),
                   "lacks the architecture", "the bands", "--arch smp", "--stats-from")
    args = ["import", tmp_path / "w.pth", "-o", tmp_path / "w.onnx", "--arch", "smp",
            "--arch-arg", "arch=unet"] + [f"--arch-arg={k}={json.dumps(v)}" for k, v in
                                          TINY.items()]
    r = run(runner, *args, "--bands", "1,2,3", "--classes", "bg,roof", "--band-mean",
            "500,500,500", "--band-std", "250,250,250", "--tile-size", "64")
    assert r.exit_code == 0, r.output
    r = run(runner, "predict", scene, "-o", tmp_path / "o.geojson", "--model", tmp_path / "w.onnx",
            "-q")
    assert r.exit_code == 0, r.output


def test_help_lists_import_and_every_model_kind(runner):
    assert "import" in run(runner, "--help").output
    text = " ".join(run(runner, "predict", "--help").output.split())
    for kind in (".safetensors", ".onnx", "save_pretrained", "torchgeo", ".pth"):
        assert kind in text
    text = " ".join(run(runner, "import", "--help").output.split())
    for option in ("--stats-from", "--band-mean", "--classes", "--gsd", "--license"):
        assert option in text
