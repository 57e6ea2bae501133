"""``geounet train`` from the command line: datasets, fine-tuning, freezing, errors."""

import numpy as np
from builders import scene_row
from safetensors.torch import load_file

from geounet.cli import cli as main
from geounet.models import read_metadata
from geounet.models.modelfile import resolve_model_path

SMALL = ["--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2", "--tile-size", "64",
         "--overlap", "16", "--device", "cpu", "--workers", "0", "--quiet"]


def test_fine_tune_bundled_model_with_frozen_encoder_keeps_its_encoder(tmp_path, runner):
    scenes, labels = scene_row(tmp_path, n=1)
    out = tmp_path / "ft.safetensors"
    r = runner.invoke(main, ["train", str(scenes[0]), str(labels), "-o", str(out),
                             "--init", "buildings-atlanta", "--freeze-encoder", "1", *SMALL])
    assert r.exit_code == 0, r.output
    meta, base = read_metadata(out), read_metadata(resolve_model_path("buildings-atlanta"))
    assert meta.training["init"]["model"] == "buildings-atlanta"
    assert meta.band_mean == base.band_mean and meta.gsd_m == base.gsd_m == 0.5  # kept
    assert meta.architecture == base.architecture and meta.arch_args == base.arch_args
    assert meta.training["dataset"][0]["gsd_m"] == 1.0  # the 1 m scene was read at 0.5 m
    new = load_file(str(out))
    old = load_file(str(resolve_model_path("buildings-atlanta")))
    enc = [k for k in new if k.startswith(("inc.", "downs.")) and "running" not in k
           and "num_batches" not in k]
    dec = [k for k in new if k.startswith("ups.") and k.endswith("weight")]
    assert enc and all(np.array_equal(new[k].numpy(), old[k].numpy()) for k in enc)
    assert any(not np.array_equal(new[k].numpy(), old[k].numpy()) for k in dec)


def test_fine_tune_to_new_classes_rebuilds_the_head_by_name(tmp_path, runner):
    scenes, labels = scene_row(tmp_path, n=1)
    out = tmp_path / "kinds.safetensors"
    r = runner.invoke(main, ["train", str(scenes[0]), str(labels), "-o", str(out), "--init",
                             "buildings-atlanta", "--label-column", "kind", *SMALL])
    assert r.exit_code == 0, r.output
    meta = read_metadata(out)
    assert meta.classes == ["background", "a", "b"] and meta.out_channels == 3
    report = meta.training["init"]["classes"]
    assert report["head_rebuilt"] and report["new"] == ["a", "b"]
    assert report["dropped"] == ["building"]


def test_dataset_option_and_errors(tmp_path, runner):
    scenes, labels = scene_row(tmp_path, n=2)
    csv = tmp_path / "d.csv"
    csv.write_text(f"scene,labels,split\n{scenes[0].name},{labels.name},train\n"
                   f"{scenes[1].name},{labels.name},val\n")
    out = tmp_path / "d.safetensors"
    r = runner.invoke(main, ["train", "--dataset", str(csv), "-o", str(out), "--arch", "unet",
                             "--base-channels", "8", "--depth", "2", *SMALL])
    assert r.exit_code == 0, r.output
    meta = read_metadata(out)
    assert meta.training["config"]["val_region"] is None  # a val scene: no region by default
    assert meta.training["val_iou"] is not None
    r = runner.invoke(main, ["train", str(scenes[0]), "-o", str(out), *SMALL])
    assert r.exit_code != 0 and "pairs SCENE LABELS" in r.output and "Traceback" not in r.output
    r = runner.invoke(main, ["train", str(scenes[0]), str(labels), "-o",
                             str(tmp_path / "x.safetensors"), "--init", "no-such-model", *SMALL])
    assert r.exit_code != 0 and "no-such-model" in r.output and "Traceback" not in r.output
