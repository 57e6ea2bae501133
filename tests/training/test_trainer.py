"""geounet.training: the Trainer and train() on small seeded scenes (labels: test_labels.py)."""

import numpy as np
import pytest
from rasterio.windows import Window
from builders import LABEL_T as T
from builders import sparse_landcover, synthetic
from safetensors.torch import load_file

from geounet.errors import InvalidOptionError, LabelError, RegionError
from geounet.labels import rasterize_labels
from geounet.models import load_model, read_metadata
from geounet.regions import parse_region
from geounet.training import TrainConfig, Trainer, train

CFG = dict(arch="unet", arch_args={"base_channels": 8, "depth": 2}, epochs=3, steps_per_epoch=12,
           batch_size=4, tile_size_px=64, overlap_px=16, lr=5e-3, val_region="east:0.25",
           device="cpu", name="syn")


def test_training_learns_and_is_repeatable(tmp_path):
    scene, labels = synthetic(tmp_path)
    r1 = train(scene, labels, tmp_path / "a.safetensors", TrainConfig(seed=7, **CFG))
    assert r1.val_iou > 0.5  # bright squares are easy; an untrained net scores ~0.1
    assert [h["epoch"] for h in r1.history] == [1, 2, 3]
    meta = read_metadata(r1.path)
    assert meta.training["val_iou"] == pytest.approx(r1.val_iou, abs=1e-4)
    assert meta.training["config"]["seed"] == 7 and meta.classes == ["background", "building"]
    assert meta.band_mean[0] == pytest.approx(350, abs=80)
    # the equivariant upsampling is recorded, and the context measured on the training scene
    assert meta.arch_args["align_corners"] is False
    assert meta.context["scene"] == scene.name and meta.context["tile_size_px"] == 64
    assert 0 < meta.context_px <= meta.context["measurable_px"]
    assert meta.overlap_px >= 2 * meta.context_px and meta.tile_size_px >= 4 * meta.overlap_px
    r2 = train(scene, labels, tmp_path / "b.safetensors", TrainConfig(seed=7, **CFG))
    a, b = load_file(str(r1.path)), load_file(str(r2.path))
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    load_model(r1.path)


def test_multiclass_training_from_label_column(tmp_path):
    scene, labels = synthetic(tmp_path, seed=1)
    cfg = dict(CFG, epochs=2, steps_per_epoch=2)
    r = train(scene, labels, tmp_path / "mc.safetensors",
              TrainConfig(label_column="kind", seed=0, keep="last", **cfg))
    meta = read_metadata(r.path)
    assert meta.classes == ["background", "a", "b"] and meta.out_channels == 3
    assert r.best_epoch == 2 and meta.training["best_epoch"] == 2  # keep="last"


def test_regions():
    w = parse_region("east:0.25", 200, 100, T)
    assert (w.col_off, w.row_off, w.width, w.height) == (150, 0, 50, 100)
    assert parse_region("0.25", 200, 100, T) == w
    n = parse_region("north:0.1", 200, 100, T)
    assert (n.row_off, n.height, n.width) == (0, 10, 200)
    p = parse_region("px:10,20,30,40", 200, 100, T)
    assert (p.col_off, p.row_off, p.width, p.height) == (10, 20, 20, 20)
    m = parse_region("map:500010,3999960,500030,3999980", 200, 100, T)
    assert (m.col_off, m.row_off, m.width, m.height) == (10, 20, 20, 20)
    for bad in ("east:1.5", "px:1,2", "moon:0.3", "px:500,500,600,600"):
        with pytest.raises(RegionError):
            parse_region(bad, 200, 100, T)


def test_sparse_labels_ignore_unlabelled_pixels_and_hold_out_polygons(tmp_path):
    rl = rasterize_labels
    scene, labels = sparse_landcover(tmp_path)
    lab, classes = rl(labels, 192, 128, T, "EPSG:32616", label_column="name",
                      class_map={"water": "water", "field": "field", "town": "town"},
                      unlabelled="ignore")
    assert classes == ["water", "field", "town"]  # no background class, map order = ids
    assert (lab == 255).mean() > 0.5 and set(np.unique(lab)) == {0, 1, 2, 255}
    cfg = dict(CFG, epochs=3, steps_per_epoch=20, val_region=None)
    r = train(scene, labels, tmp_path / "lc.safetensors",
              TrainConfig(label_column="code", class_map={"1": "water", "2": "field",
                                                           "3": "town"},
                          unlabelled="ignore", val_polygons=0.34, keep="last", seed=0, **cfg))
    meta = read_metadata(r.path)
    assert meta.classes == ["water", "field", "town"] and meta.background_class is None
    assert meta.out_channels == 3 and len(meta.class_colors) == 3
    held = meta.training["held_out_rows"]
    assert len(held) == 3 and sorted(h // 3 for h in held) == [0, 1, 2]  # one per class
    assert r.val_iou is not None and r.val_iou > 0.8  # distinct spectra: easy when learnt


def test_class_map_errors():
    # (a class map that matches no label value: test_labels.test_class_map_matches_no_value)
    with pytest.raises(Exception, match="label column"):
        TrainConfig(class_map={"1": "a"})
    with pytest.raises(Exception, match="between 0 and 1"):
        TrainConfig(val_polygons=1.0)


def test_sparse_training_refuses_settings_that_cannot_work(tmp_path):
    scene, labels = sparse_landcover(tmp_path)
    with pytest.raises(Exception, match="predicts everything would score 1.0"):
        TrainConfig(val_polygons=0.3)  # dense labels: held-out polygons are all foreground
    cfg = dict(CFG, epochs=1, steps_per_epoch=1, val_region=None)
    with pytest.raises(LabelError, match="one class"):
        train(scene, labels, tmp_path / "one.safetensors",
              TrainConfig(unlabelled="ignore", **cfg))  # every polygon one class, no background
    assert not (tmp_path / "one.safetensors").exists()


def test_trainer_runs_phase_by_phase_like_train(tmp_path):
    import torch

    scene, labels = synthetic(tmp_path)
    cfg = TrainConfig(seed=2, **dict(CFG, epochs=1, steps_per_epoch=3))
    t = Trainer(cfg)
    data = t.prepare_data(scene, labels)
    assert data.binary and data.out_channels == 1 and data.has_validation
    assert data.classes == ["background", "building"] and len(data.scenes) == 1
    ts = data.scenes[0]
    whole_grid = Window(0, 0, ts.width, ts.height)
    train_lab = ts.labels(whole_grid, data.spec.fill, train=True)
    val_lab = ts.labels(whole_grid, data.spec.fill, train=False)
    assert (train_lab[:, 192:] == 255).all()  # the east quarter is never trained on
    assert (val_lab[:, :192] == 255).all() and (val_lab[:, 192:] != 255).any()
    torch.manual_seed(2)  # as fit() seeds before building the model
    t.configure_model()
    assert t.configure_loss() is None  # binary: BCE + Dice, unweighted
    t.configure_optimizers()
    t.configure_batches(tmp_path / "phases.safetensors")
    t.checkpoint(1, t.train_epoch(), t.validate())
    res = t.save(tmp_path / "phases.safetensors", 0.0)
    t.setup.close()
    whole = train(scene, labels, tmp_path / "whole.safetensors", cfg)
    assert res.history == whole.history and res.best_epoch == whole.best_epoch == 1
    a, b = load_file(str(res.path)), load_file(str(whole.path))
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)


def test_training_option_errors(tmp_path):
    scene, labels = synthetic(tmp_path)
    with pytest.raises(InvalidOptionError, match="not a multiple of 4"):
        train(scene, labels, tmp_path / "a.safetensors", TrainConfig(**dict(CFG, tile_size_px=50)))
    with pytest.raises(RegionError, match="covers the whole scene"):
        train(scene, labels, tmp_path / "b.safetensors",
              TrainConfig(**dict(CFG, val_region="px:0,0,256,128")))
    for bad in (dict(keep="first"), dict(lr_schedule="step"), dict(epochs=0), dict(lr=0),
                dict(tile_size_px=16), dict(class_weighting="auto"), dict(unlabelled="none")):
        with pytest.raises(InvalidOptionError):
            TrainConfig(**bad)
