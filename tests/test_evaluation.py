"""geounet.evaluation: scoring prediction files against truth files (figures: test_metrics.py)."""

import geopandas as gpd
import numpy as np
import pytest
import shapely
from builders import write_geotiff
from rasterio.transform import from_origin

from geounet.evaluation import evaluate

T = from_origin(0, 100, 1, 1)  # 1 m pixels, 100x100 m grid in EPSG:32616


def test_evaluate_raster_against_polygons_with_region(tmp_path):
    cls = np.zeros((100, 100), np.uint8)
    cls[10:20, 10:20] = 1          # west: exact building
    cls[10:20, 70:80] = 1          # east: exact building
    cls[50:60, 85:95] = 1          # east: false positive
    cls[90:100, :] = 255           # nodata strip is not counted
    pred = write_geotiff(tmp_path / "pred.tif", cls, transform=T, nodata=255)
    truth = gpd.GeoDataFrame(geometry=[shapely.box(10, 80, 20, 90), shapely.box(70, 80, 80, 90),
                                       shapely.box(30, 30, 40, 40)], crs="EPSG:32616")
    truth.to_file(tmp_path / "truth.gpkg")
    whole = evaluate(pred, tmp_path / "truth.gpkg")
    assert (whole.pixel.tp, whole.pixel.fp, whole.pixel.fn) == (200, 100, 100)
    assert whole.pixel.iou == pytest.approx(0.5)
    assert (whole.buildings.tp, whole.buildings.fp, whole.buildings.fn) == (2, 1, 1)
    east = evaluate(pred, tmp_path / "truth.gpkg", region="east:0.5")
    assert (east.pixel.tp, east.pixel.fp, east.pixel.fn) == (100, 100, 0)
    assert (east.buildings.tp, east.buildings.fp, east.buildings.fn) == (1, 1, 0)
    # the same truth in another CRS gives the same figures
    truth.to_crs(4326).to_file(tmp_path / "truth.geojson")
    again = evaluate(pred, tmp_path / "truth.geojson", region="east:0.5")
    assert (again.buildings.tp, again.buildings.fp, again.buildings.fn) == (1, 1, 0)
    assert again.buildings.mean_iou_matched == pytest.approx(1, abs=1e-6)


def test_evaluate_two_vectors_needs_a_grid(tmp_path):
    from geounet.errors import GeounetError

    g = gpd.GeoDataFrame(geometry=[shapely.box(10, 10, 20, 20)], crs="EPSG:32616")
    g.to_file(tmp_path / "a.gpkg")
    with pytest.raises(GeounetError, match="--grid"):
        evaluate(tmp_path / "a.gpkg", tmp_path / "a.gpkg")
    grid = write_geotiff(tmp_path / "grid.tif", np.zeros((100, 100), np.uint8), transform=T)
    r = evaluate(tmp_path / "a.gpkg", tmp_path / "a.gpkg", grid=grid)
    assert r.pixel.iou == 1 and r.buildings.f1 == 1


def test_multiclass_confusion_matrix_and_mean_iou(tmp_path):
    import json

    from geounet.metrics import class_metrics, confusion_matrix

    # class raster: left half class 0 ("water"), right half class 1 ("forest"); row 0 nodata
    arr = np.zeros((100, 100), np.uint8)
    arr[:, 50:] = 1
    arr[0] = 255
    pred = write_geotiff(tmp_path / "classes.tif", arr, transform=T, nodata=255)
    import rasterio

    with rasterio.open(pred, "r+") as ds:
        ds.update_tags(CLASS_NAMES=json.dumps(["water", "forest", "town"]))
    # truth: a water polygon x 40..60, rows 10..30, straddling the class border (200 px
    # right, 200 px predicted forest); a forest polygon on forest pixels (100 px); a forest
    # polygon at x 0..10 over rows 0..5, whose row 0 is nodata (40 px predicted water)
    truth = tmp_path / "truth.gpkg"
    gpd.GeoDataFrame(
        {"cover": ["W", "F", "F"]},
        geometry=[shapely.box(40, 70, 60, 90), shapely.box(60, 10, 70, 20),
                  shapely.box(0, 95, 10, 100)],  # the last one lies in the nodata row 0..4
        crs="EPSG:32616").to_file(truth)
    res = evaluate(pred, truth, label_column="cover", class_map={"W": "water", "F": "forest"})
    c = res.classes
    assert res.pixel is None and c.classes == ["water", "forest", "town"]
    assert c.confusion[0] == [200, 200, 0]
    assert c.confusion[1] == [40, 100, 0]
    assert c.pixels == 540 and c.polygons == 3
    assert c.overall_accuracy == pytest.approx(300 / 540)
    iou_w = 200 / (400 + 240 - 200)
    iou_f = 100 / (140 + 300 - 100)
    assert c.per_class["water"]["iou"] == pytest.approx(iou_w)
    assert c.per_class["forest"]["iou"] == pytest.approx(iou_f)
    assert c.per_class["town"]["iou"] is None  # no truth, no prediction
    assert c.mean_iou == pytest.approx((iou_w + iou_f) / 2)  # over classes with truth only
    # rows: only the first polygon
    only = evaluate(pred, truth, label_column="cover", class_map={"W": "water", "F": "forest"},
                    rows=[0]).classes
    assert only.confusion[0] == [200, 200, 0] and only.pixels == 400
    cm = confusion_matrix(np.array([0, 1, 1]), np.array([0, 0, 1]), 2)
    assert cm.tolist() == [[1, 1], [0, 1]]
    assert class_metrics(cm, ["a", "b"]).per_class["a"]["recall"] == 0.5


def test_multiclass_errors(tmp_path):
    from geounet.errors import GeounetError

    arr = np.zeros((100, 100), np.uint8)
    pred = write_geotiff(tmp_path / "c.tif", arr, transform=T, nodata=255)
    truth = tmp_path / "t.gpkg"
    gpd.GeoDataFrame({"cover": ["lake"]}, geometry=[shapely.box(0, 0, 10, 10)],
                     crs="EPSG:32616").to_file(truth)
    with pytest.raises(GeounetError, match="CLASS_NAMES"):
        evaluate(pred, truth, label_column="cover")
    with pytest.raises(GeounetError, match=r"\['lake'\] are not classes"):
        evaluate(pred, truth, label_column="cover", classes=["water", "forest"])
    with pytest.raises(GeounetError, match="rows \\[5\\]"):
        evaluate(pred, truth, label_column="cover", classes=["lake"], rows=[5])


def test_evaluation_error_classes(tmp_path):
    from geounet.errors import InvalidOptionError, LabelError

    pred = write_geotiff(tmp_path / "c.tif", np.zeros((100, 100), np.uint8), transform=T,
                         nodata=255)
    small = write_geotiff(tmp_path / "s.tif", np.zeros((50, 50), np.uint8), transform=T)
    truth = tmp_path / "t.gpkg"
    gpd.GeoDataFrame({"cover": ["lake"]}, geometry=[shapely.box(0, 0, 10, 10)],
                     crs="EPSG:32616").to_file(truth)
    with pytest.raises(InvalidOptionError, match="not both"):
        evaluate(pred, truth, rows=[0], held_out_of="model.safetensors")
    with pytest.raises(InvalidOptionError, match="needs a class raster as PRED"):
        evaluate(truth, truth, label_column="cover", classes=["lake"])
    with pytest.raises(InvalidOptionError, match="not on the same grid"):
        evaluate(pred, small)
    twos = write_geotiff(tmp_path / "2.tif", np.full((100, 100), 2, np.uint8), transform=T)
    with pytest.raises(InvalidOptionError, match="holds class id 2 but only 1"):
        evaluate(twos, truth, label_column="cover", classes=["lake"])
    with pytest.raises(LabelError, match="no pixel of"):
        evaluate(pred, truth, label_column="cover", classes=["lake"], region="px:50,0,60,10")
