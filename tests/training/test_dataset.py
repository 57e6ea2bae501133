"""Training on many scenes: dataset CSV, shared label files, splits, GSDs, windows from disk."""

import collections

import numpy as np
import pytest
from builders import scene_row
from rasterio.windows import Window

from geounet.errors import InputNotFoundError, InvalidOptionError
from geounet.models import read_metadata
from geounet.training import SceneSpec, TrainConfig, Trainer, pairs, read_dataset_csv, train
from geounet.training.windows import StepSampler, WindowDataset, make_loader

CFG = dict(arch="unet", arch_args={"base_channels": 8, "depth": 2}, epochs=2, steps_per_epoch=6,
           batch_size=4, tile_size_px=64, overlap_px=16, lr=5e-3, device="cpu", name="row",
           workers=0, tensorboard=False)


def _csv(tmp_path, scenes, labels, splits):
    rows = ["scene,labels,split"] + [f"{s.name},{labels.name},{sp}"
                                     for s, sp in zip(scenes, splits, strict=True)]
    path = tmp_path / "dataset.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_dataset_csv_paths_are_relative_to_it_and_errors_name_the_fix(tmp_path):
    scenes, labels = scene_row(tmp_path, n=2)
    specs = read_dataset_csv(_csv(tmp_path, scenes, labels, ["train", ""]))
    assert [s.split for s in specs] == ["train", "train"]  # empty split: train
    assert specs[0].scene == str(scenes[0]) and specs[1].labels == str(labels)
    (tmp_path / "bad.csv").write_text("image,mask\na.tif,b.gpkg\n")
    with pytest.raises(InvalidOptionError, match="needs 'scene' and 'labels'"):
        read_dataset_csv(tmp_path / "bad.csv")
    (tmp_path / "split.csv").write_text(f"scene,labels,split\n{scenes[0].name},{labels.name},"
                                        "holdout\n")
    with pytest.raises(InvalidOptionError, match="must be one of train, val, test"):
        read_dataset_csv(tmp_path / "split.csv")
    (tmp_path / "gone.csv").write_text(f"scene,labels\nnope.tif,{labels.name}\n")
    with pytest.raises(InputNotFoundError, match="nope.tif"):
        read_dataset_csv(tmp_path / "gone.csv")
    with pytest.raises(InvalidOptionError, match="pairs SCENE LABELS"):
        pairs([str(scenes[0])])
    assert pairs([str(scenes[0]), str(labels)]) == [SceneSpec(str(scenes[0]), str(labels))]


def test_shared_label_file_is_clipped_per_scene_and_val_scenes_are_never_sampled(tmp_path):
    scenes, labels = scene_row(tmp_path, n=3)
    specs = read_dataset_csv(_csv(tmp_path, scenes, labels, ["train", "train", "val"]))
    t = Trainer(TrainConfig(val_region=None, **CFG))
    data = t.prepare_data(specs)
    assert [ts.spec.split for ts in data.scenes] == ["train", "train", "val"]
    for k, ts in enumerate(data.scenes):
        minx = ts.polygons.geometry.bounds["minx"]
        maxx = ts.polygons.geometry.bounds["maxx"]
        assert ((maxx >= 500000 + 256 * k) & (minx <= 500000 + 256 * (k + 1))).all()
        assert 0 < len(ts.polygons) < 30  # clipped: not the whole file
    assert data.scenes[2].weight == 0 and data.scenes[2].val_window == Window(0, 0, 256, 128)
    # a window's labels (its nearby polygons only) are the scene's labels there
    ts = data.scenes[1]
    whole = ts.labels(Window(0, 0, ts.width, ts.height), 0, train=True)
    for c, r in ((0, 0), (37, 21), (200, 90)):
        part = ts.labels(Window(c, r, 64, 64), 0, train=True)
        inside = whole[r:r + 64, c:c + 64]
        assert np.array_equal(part[:inside.shape[0], :inside.shape[1]], inside)
    assert (whole == 1).sum() > 500
    ds = WindowDataset(data.scenes, data.scaler, data.spec.fill, 64, seed=0)
    picks = collections.Counter(ds.window(i)[0].index for i in range(600))
    assert picks[2] == 0 and abs(picks[0] - picks[1]) < 90  # equal areas, equal shares
    # the band statistics leave the val scene out: pixels of scenes 0 and 1 only
    x, y = ds[5]
    assert x.shape == (1, 64, 64) and y.dtype.is_floating_point is False


def test_windows_are_the_same_with_any_number_of_workers(tmp_path):
    scenes, labels = scene_row(tmp_path, n=2)
    t = Trainer(TrainConfig(val_region="east:0.25", **CFG))
    data = t.prepare_data(pairs([str(scenes[0]), str(labels), str(scenes[1]), str(labels)]))
    ds = WindowDataset(data.scenes, data.scaler, data.spec.fill, 64, seed=3)
    batches = {}
    for workers in (0, 2):
        sampler = StepSampler(batch=4, steps=3)
        sampler.epoch = 2
        batches[workers] = [(x.clone(), y.clone()) for x, y in make_loader(ds, sampler, workers)]
    ds.close()
    assert len(batches[0]) == 3
    for (x0, y0), (x2, y2) in zip(batches[0], batches[2], strict=True):
        assert np.array_equal(x0.numpy(), x2.numpy()) and np.array_equal(y0.numpy(), y2.numpy())
    # ranks of a data-parallel run draw disjoint sample numbers
    a, b = StepSampler(4, 3, rank=0, world=2), StepSampler(4, 3, rank=1, world=2)
    assert not set(a) & set(b) and len(set(a) | set(b)) == 24


def test_scenes_at_another_gsd_are_read_at_the_training_gsd(tmp_path):
    scenes, labels = scene_row(tmp_path, n=2, coarse=1)
    t = Trainer(TrainConfig(val_region=None, **CFG))
    data = t.prepare_data(pairs([str(scenes[0]), str(labels), str(scenes[1]), str(labels)]))
    fine, coarse = data.scenes
    assert data.gsd_m == 1.0 and coarse.gsd_m == 2.0 and coarse.train_gsd_m == 1.0
    assert (coarse.width, coarse.height) == (256, 128)  # 128 x 64 px at 2 m, read at 1 m
    with coarse.open() as sc:
        x, valid = sc.read(Window(0, 0, 256, 128))
    lab = coarse.labels(Window(0, 0, 256, 128), 0, train=True)
    assert valid.all() and (lab == 1).sum() > 200
    # bright buildings under their labels on the resampled grid
    assert x[0][lab == 1].mean() > 700 and x[0][lab == 0].mean() < 450


def test_training_on_a_dataset_records_it_in_the_model(tmp_path):
    scenes, labels = scene_row(tmp_path, n=3)
    csv = _csv(tmp_path, scenes, labels, ["train", "val", "test"])
    r = train(read_dataset_csv(csv), None, tmp_path / "m.safetensors",
              TrainConfig(val_region=None, **CFG))
    assert r.val_iou is not None and 0 < r.val_iou <= 1
    meta = read_metadata(r.path)
    ds = meta.training["dataset"]
    assert [d["split"] for d in ds] == ["train", "val", "test"]
    assert [d["scene"] for d in ds] == [s.name for s in scenes]
    assert len({d["labels_sha256"] for d in ds}) == 1 and len(ds[0]["labels_sha256"]) == 64
    assert ds[0]["bounds"] == [500000.0, 3999872.0, 500256.0, 4000000.0]
    assert "seconds" not in meta.training  # wall times are in the log folder only
    lines = (r.log_dir / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and '"rss_mb"' in lines[0] and (r.log_dir / "curves.png").stat().st_size
