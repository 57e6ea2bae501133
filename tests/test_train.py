import geopandas as gpd
import numpy as np
import pytest
import shapely
from rasterio.transform import from_origin
from safetensors.torch import load_file

from conftest import write_geotiff
from geounet.errors import LabelError, MissingCRSError, RegionError
from geounet.models import load_model, read_metadata
from geounet.regions import parse_region
from geounet.training import TrainConfig, rasterize_labels, train

T = from_origin(500000, 4000000, 1, 1)


def synthetic(tmp_path, seed=0, n=14):
    """Bright squares (buildings) on a noisy dark ground, and their polygons."""
    rng = np.random.default_rng(seed)
    img = rng.normal(300, 40, (128, 256))
    boxes = []
    for _ in range(n):
        r, c = int(rng.integers(4, 108)), int(rng.integers(4, 236))
        s = int(rng.integers(8, 16))
        img[r : r + s, c : c + s] = rng.normal(900, 40)
        boxes.append(shapely.box(500000 + c, 4000000 - r - s, 500000 + c + s, 4000000 - r))
    scene = write_geotiff(tmp_path / "syn.tif", img.clip(0, 2000).astype(np.uint16), transform=T)
    labels = tmp_path / "syn.gpkg"
    gpd.GeoDataFrame({"kind": ["a", "b"] * (n // 2)}, geometry=boxes, crs="EPSG:32616").to_file(labels)
    return scene, labels


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


def test_rasterize_labels_and_errors(tmp_path):
    scene, labels = synthetic(tmp_path)
    lab, classes = rasterize_labels(labels, 256, 128, T, "EPSG:32616")
    assert classes == ["background", "building"] and lab.max() == 1 and lab.sum() > 500
    with pytest.raises(LabelError, match="columns are"):
        rasterize_labels(labels, 256, 128, T, "EPSG:32616", label_column="nope")
    far = tmp_path / "far.gpkg"
    gpd.GeoDataFrame(geometry=[shapely.box(0, 0, 10, 10)], crs="EPSG:32616").to_file(far)
    with pytest.raises(LabelError, match="do not overlap"):
        rasterize_labels(far, 256, 128, T, "EPSG:32616")
    nocrs = tmp_path / "nocrs.geojson"
    nocrs.write_text('{"type":"FeatureCollection","features":[{"type":"Feature","properties":{},'
                     '"geometry":{"type":"Point","coordinates":[1,2]}}]}')
    gdf = gpd.read_file(nocrs)
    gdf.set_crs(None, allow_override=True).to_file(tmp_path / "nocrs.gpkg")
    with pytest.raises(MissingCRSError):
        rasterize_labels(tmp_path / "nocrs.gpkg", 256, 128, T, "EPSG:32616")


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


def sparse_landcover(tmp_path, seed=0):
    """Three spectrally distinct land covers in bands 1-2, each labelled by a few polygons
    (most pixels unlabelled), as in a land-cover training set."""
    rng = np.random.default_rng(seed)
    h, w = 128, 192
    cover = np.zeros((h, w), int)
    cover[:, 64:128] = 1
    cover[:, 128:] = 2
    means = np.array([[200, 800], [800, 200], [600, 600]])
    img = np.stack([rng.normal(means[cover, b], 30) for b in range(2)]).clip(0, 2000)
    scene = write_geotiff(tmp_path / "lc.tif", img.astype(np.uint16), transform=T)
    polys, names, codes = [], [], []
    for k, name in enumerate(["water", "field", "town"]):
        for r in (8, 48, 88):
            c = 64 * k + 8 + (r % 3) * 4
            polys.append(shapely.box(500000 + c, 4000000 - r - 24, 500000 + c + 24, 4000000 - r))
            names.append(name)
            codes.append(k + 1)
    labels = tmp_path / "lc.gpkg"
    gpd.GeoDataFrame({"name": names, "code": codes}, geometry=polys,
                     crs="EPSG:32616").to_file(labels)
    return scene, labels


def test_hold_out_polygons_is_per_class_seeded_and_keeps_singletons():
    from geounet.training import hold_out_polygons

    ids = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1, 2])
    a = hold_out_polygons(ids, 0.34, seed=3)
    assert np.array_equal(a, hold_out_polygons(ids, 0.34, seed=3))
    assert a[ids == 0].sum() == 1 and a[ids == 1].sum() == 2  # round(0.34 * n), at least 1
    assert not a[ids == 2].any()  # a class with one polygon keeps it for training
    assert hold_out_polygons(np.array([4, 4]), 0.9, seed=0).sum() == 1  # never all of a class
    assert any(not np.array_equal(a, hold_out_polygons(ids, 0.34, seed=s)) for s in range(5))


def test_sparse_labels_ignore_unlabelled_pixels_and_hold_out_polygons(tmp_path):
    from geounet.training import rasterize_labels as rl

    scene, labels = sparse_landcover(tmp_path)
    lab, classes = rl(labels, 192, 128, T, "EPSG:32616", label_column="name",
                      class_map={"water": "water", "field": "field", "town": "town"},
                      unlabelled="ignore")
    assert classes == ["water", "field", "town"]  # no background class, map order = ids
    assert (lab == 255).mean() > 0.5 and set(np.unique(lab)) == {0, 1, 2, 255}
    cfg = dict(CFG, epochs=3, steps_per_epoch=10, val_region=None)
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


def test_class_map_errors(tmp_path):
    _, labels = sparse_landcover(tmp_path)
    with pytest.raises(LabelError, match="no polygon"):
        rasterize_labels(labels, 192, 128, T, "EPSG:32616", label_column="name",
                         class_map={"lake": "water"}, unlabelled="ignore")
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


def test_numeric_codes_sort_by_value(tmp_path):
    from geounet.training import load_labels

    path = tmp_path / "codes.gpkg"
    gpd.GeoDataFrame({"code": [11, 2, 1]}, geometry=[shapely.box(0, 0, 1, 1)] * 3,
                     crs="EPSG:32616").to_file(path)
    _, classes = load_labels(path, "EPSG:32616", "code", unlabelled="ignore")
    assert classes == ["1", "2", "11"]
