"""geounet.labels: reading label polygons, class ids, burning them, holding polygons out."""

import warnings

import geopandas as gpd
import numpy as np
import pytest
import shapely
from builders import LABEL_T as T
from builders import sparse_landcover, synthetic

import geounet.labels
from geounet.io.checksum import file_sha256
from geounet.errors import InvalidOptionError, LabelError, MissingCRSError
from geounet.labels import LabelSpec, hold_out_polygons, load_labels, rasterize_labels


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


def test_hold_out_polygons_is_per_class_seeded_and_keeps_singletons():
    ids = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1, 2])
    a = hold_out_polygons(ids, 0.34, seed=3)
    assert np.array_equal(a, hold_out_polygons(ids, 0.34, seed=3))
    assert a[ids == 0].sum() == 1 and a[ids == 1].sum() == 2  # round(0.34 * n), at least 1
    assert not a[ids == 2].any()  # a class with one polygon keeps it for training
    assert hold_out_polygons(np.array([4, 4]), 0.9, seed=0).sum() == 1  # never all of a class
    assert any(not np.array_equal(a, hold_out_polygons(ids, 0.34, seed=s)) for s in range(5))


def test_class_map_matches_no_value(tmp_path):
    _, labels = sparse_landcover(tmp_path)
    with pytest.raises(LabelError, match="no polygon"):
        rasterize_labels(labels, 192, 128, T, "EPSG:32616", label_column="name",
                         class_map={"lake": "water"}, unlabelled="ignore")


def test_numeric_codes_sort_by_value(tmp_path):
    path = tmp_path / "codes.gpkg"
    gpd.GeoDataFrame({"code": [11, 2, 1]}, geometry=[shapely.box(0, 0, 1, 1)] * 3,
                     crs="EPSG:32616").to_file(path)
    _, classes = load_labels(path, "EPSG:32616", "code", unlabelled="ignore")
    assert classes == ["1", "2", "11"]


def test_label_spec_states_the_label_options_once(tmp_path):
    _, labels = sparse_landcover(tmp_path)
    spec = LabelSpec("code", class_map={"1": "water", "2": "field", "3": "town"},
                     unlabelled="ignore")
    assert spec.fill == 255 and spec.background_class is None
    assert LabelSpec().fill == 0 and LabelSpec().background_class == 0
    gdf, classes = spec.load(labels, "EPSG:32616")
    same, same_classes = load_labels(labels, "EPSG:32616", "code", class_map=spec.class_map,
                                     unlabelled="ignore")
    assert classes == same_classes == ["water", "field", "town"]
    assert gdf["class_id"].tolist() == same["class_id"].tolist() == [0] * 3 + [1] * 3 + [2] * 3
    assert gdf["row"].tolist() == list(range(9))
    with pytest.raises(InvalidOptionError, match="must be 'background'"):
        LabelSpec(unlabelled="nothing")


def test_label_value_helpers_and_file_hash(tmp_path):
    assert geounet.labels.label_text(3.0) == "3" and geounet.labels.label_text("x") == "x"
    assert sorted(["b", "11", "2", "a"], key=geounet.labels.natural_key) == ["2", "11", "a", "b"]
    p = tmp_path / "f.bin"
    p.write_bytes(b"abc")
    assert file_sha256(p) == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")


def test_old_training_names_warn_and_forward():
    import geounet.constants
    import geounet.metrics
    import geounet.training

    for name in ("load_labels", "burn_labels", "rasterize_labels", "hold_out_polygons"):
        with pytest.warns(DeprecationWarning, match=f"geounet.labels.{name}"):
            assert getattr(geounet.training, name) is getattr(geounet.labels, name)
    with pytest.warns(DeprecationWarning, match="CLASS_NODATA"):
        assert geounet.training.IGNORE == geounet.constants.CLASS_NODATA == 255
    with pytest.warns(DeprecationWarning, match="geounet.metrics.iou_from_labels"):
        assert geounet.training.iou_from_labels is geounet.metrics.iou_from_labels
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from geounet.training import TrainConfig, TrainResult, train  # noqa: F401
