"""Torch models of other tools: smp save_pretrained folders, torchgeo checkpoints, state dicts."""

import json

import pytest
import torch
from builders import random_scene

from geounet.errors import ModelFileError
from geounet.import_model import import_model, scene_statistics
from geounet.models import build_model, load_model, read_metadata
from geounet.models.foreign_torch import SMP_FOLDER, TORCHGEO, inspect_foreign
from geounet.models.modelfile import format_of

TINY = dict(encoder_name="resnet18", encoder_depth=3, decoder_channels=(16, 8, 4))
"""A small smp U-Net (0.7 M parameters) that builds in well under a second."""


def smp_folder(tmp_path, in_channels=2, classes=1, **kw):
    import segmentation_models_pytorch as smp

    torch.manual_seed(0)
    model = smp.create_model("unet", encoder_weights=None, in_channels=in_channels,
                             classes=classes, **{**TINY, **kw}).eval()
    model.save_pretrained(tmp_path / "smp_model")
    return tmp_path / "smp_model", model


def torchgeo_ckpt(path, num_classes=2, in_channels=3):
    """A checkpoint as torchgeo's SemanticSegmentationTask + Lightning write it (no torchgeo)."""
    import segmentation_models_pytorch as smp

    torch.manual_seed(1)
    net = smp.Unet(encoder_name="resnet18", encoder_weights=None, in_channels=in_channels,
                   classes=num_classes).eval()
    state = {f"model.{k}": v for k, v in net.state_dict().items()}
    state["criterion.weight"] = torch.ones(num_classes)
    torch.save({"epoch": 3, "global_step": 120, "pytorch-lightning_version": "2.4.0",
                "state_dict": state, "hyper_parameters": {
                    "model": "unet", "backbone": "resnet18", "weights": None,
                    "in_channels": in_channels, "num_classes": num_classes, "num_filters": 3,
                    "loss": "ce", "class_weights": None, "ignore_index": None, "lr": 1e-3,
                    "patience": 10, "freeze_backbone": False, "freeze_decoder": False}},
               path)
    return path, net


def test_smp_folder_needs_band_statistics_then_runs_with_a_sidecar(tmp_path):
    folder, net = smp_folder(tmp_path)
    fm = inspect_foreign(folder)
    assert fm.kind == SMP_FOLDER and fm.in_channels == 2 and fm.out_channels == 1
    assert fm.arch_args["arch"] == "unet" and fm.arch_args["encoder_depth"] == 3
    assert format_of(folder).name == "smp-folder"
    with pytest.raises(ModelFileError) as err:
        read_metadata(folder)
    msg = str(err.value)
    assert "band statistics (band_mean, band_std)" in msg and "geounet import" in msg
    assert "--stats-from" in msg and "\n" not in msg
    (folder / "geounet.json").write_text(json.dumps(
        {"band_mean": [500.0, 400.0], "band_std": [100.0, 90.0],
         "classes": ["background", "building"], "gsd_m": 0.5}))
    loaded = load_model(folder)
    meta = loaded.metadata
    assert meta.architecture == "smp" and meta.bands == [1, 2] and meta.binary
    assert meta.pad_multiple == 8 and meta.training["imported_from"]["format"] == SMP_FOLDER
    x = torch.randn(1, 2, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.module(x), net(x))


def test_torchgeo_checkpoint_two_softmax_channels_run_as_one_sigmoid(tmp_path):
    path, net = torchgeo_ckpt(tmp_path / "task.ckpt")
    fm = inspect_foreign(path)
    assert fm.kind == TORCHGEO and fm.arch_args == {"arch": "unet", "encoder_name": "resnet18",
                                                   "two_logits": True}
    out = import_model(path, tmp_path / "tg.safetensors", band_mean=[1, 2, 3],
                       band_std=[4, 5, 6], classes=["background", "water"], license="MIT")
    loaded = load_model(out)
    meta = loaded.metadata
    assert meta.classes == ["background", "water"] and meta.out_channels == 1
    origin = meta.training["imported_from"]
    assert origin["license"] == "MIT" and origin["hyper_parameters"]["backbone"] == "resnet18"
    assert len(origin["sha256"]) == 64
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        p = torch.sigmoid(loaded.module(x))
        assert torch.allclose(p, torch.softmax(net(x), dim=1)[:, 1:2], atol=1e-5)


def test_torchgeo_checkpoint_class_count_is_checked(tmp_path):
    path, _ = torchgeo_ckpt(tmp_path / "task.ckpt", num_classes=4)
    with pytest.raises(ModelFileError, match="predicts 4 classes but 2 names"):
        import_model(path, tmp_path / "x.safetensors", band_mean=[0] * 3, band_std=[1] * 3,
                     classes=["a", "b"])


def test_plain_state_dict_lists_every_missing_item(tmp_path):
    net = build_model("smp", 2, 3, arch="unet", **TINY)
    torch.save(net.state_dict(), tmp_path / "w.pth")
    with pytest.raises(ModelFileError) as err:
        read_metadata(tmp_path / "w.pth")
    msg = str(err.value)
    for item in ("the architecture", "the bands", "the class names", "the band statistics",
                 "geounet import", "w.safetensors"):
        assert item in msg, msg
    scene = random_scene(tmp_path / "s.tif", 60, 40, count=3)
    out = import_model(tmp_path / "w.pth", tmp_path / "w.safetensors", stats_from=scene,
                       architecture="smp", arch_args={"arch": "unet", **TINY}, bands=[3, 1],
                       classes=["a", "b", "c"])
    meta = read_metadata(out)
    mean, std = scene_statistics(scene, [3, 1])
    assert meta.band_mean == mean and meta.band_std == std and meta.bands == [3, 1]
    assert meta.background_class is None  # multi-class: every class a product


def test_checkpoint_that_needs_code_is_refused_in_one_line(tmp_path):
    torch.save(torch.nn.Conv2d(1, 1, 1), tmp_path / "whole.pth")
    with pytest.raises(ModelFileError) as err:
        inspect_foreign(tmp_path / "whole.pth")
    msg = str(err.value)
    assert "torch.nn.modules.conv.Conv2d" in msg and "state_dict()" in msg and "\n" not in msg
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelFileError, match="not a readable torch checkpoint"):
        inspect_foreign(tmp_path / "junk.pt")


def test_weights_that_do_not_fit_name_the_options(tmp_path):
    net = build_model("smp", 1, 1, arch="unet", **TINY)
    torch.save({"state_dict": net.state_dict()}, tmp_path / "w.pt")
    with pytest.raises(ModelFileError, match="do not fit architecture 'smp'"):
        import_model(tmp_path / "w.pt", tmp_path / "o.safetensors", architecture="smp",
                     arch_args={"arch": "fpn", "encoder_name": "resnet18"}, bands=[1],
                     classes=["bg", "x"], band_mean=[0], band_std=[1])
