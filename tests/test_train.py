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
