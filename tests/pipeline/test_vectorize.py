import numpy as np
import pytest
import shapely
from rasterio.transform import from_origin

from geounet.config import VectorizeConfig
from geounet.constants import CLASS_NODATA
from geounet.pipeline.arrays import vectorize

T = from_origin(733600.0, 3725140.0, 0.5, 0.5)


def box_px(transform, c0, r0, c1, r1):
    x0, y0 = transform @ (c0, r0)
    x1, y1 = transform @ (c1, r1)
    return shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def test_rectangles_and_holes_come_back_exactly():
    cls = np.zeros((60, 80), np.uint8)
    cls[10:30, 5:25] = 1            # 20x20 px square = 100 m2
    cls[35:55, 40:75] = 1           # with a hole
    cls[40:45, 50:60] = 0
    gdf = vectorize(cls, T, "EPSG:32616", ["background", "building"])
    assert gdf.crs.to_epsg() == 32616
    assert list(gdf.columns) == ["class_id", "class_name", "area_m2", "score", "geometry"]
    assert len(gdf) == 2
    geoms = sorted(gdf.geometry, key=lambda g: g.area)
    assert geoms[0].equals(box_px(T, 5, 10, 25, 30))
    holed = box_px(T, 40, 35, 75, 55).difference(box_px(T, 50, 40, 60, 45))
    assert geoms[1].equals(holed) and len(geoms[1].interiors) == 1
    assert sorted(gdf.area_m2) == [100.0, pytest.approx(holed.area)]
    assert set(gdf.class_name) == {"building"} and gdf.geometry.is_valid.all()


def test_nodata_and_background_are_not_polygons():
    cls = np.full((10, 10), CLASS_NODATA, np.uint8)
    cls[:5] = 0
    assert vectorize(cls, T, "EPSG:32616", ["bg", "b"]).empty


def test_scores_are_mean_probability_inside():
    cls = np.zeros((20, 20), np.uint8)
    cls[2:6, 2:6] = 1
    cls[10:15, 10:12] = 1
    probs = np.zeros((1, 20, 20), np.float32)
    probs[0, 2:6, 2:6] = 0.8
    probs[0, 10:15, 10:12] = np.linspace(0.5, 0.9, 10).reshape(5, 2)
    gdf = vectorize(cls, T, "EPSG:32616", ["bg", "b"], probs=probs).sort_values("area_m2")
    assert gdf.score.tolist() == pytest.approx([0.7, 0.8], abs=1e-6)


def test_multiclass_names_and_per_class_scores():
    cls = np.zeros((10, 10), np.uint8)
    cls[:, :5] = 1
    cls[:, 5:] = 2
    probs = np.zeros((3, 10, 10), np.float32)
    probs[1, :, :5] = 0.6
    probs[2, :, 5:] = 0.9
    gdf = vectorize(cls, T, "EPSG:32616", ["bg", "water", "forest"], probs=probs)
    d = dict(zip(gdf.class_name, gdf.score))
    assert d == pytest.approx({"water": 0.6, "forest": 0.9})


def test_min_area_in_square_metres():
    cls = np.zeros((40, 40), np.uint8)
    cls[0:4, 0:4] = 1     # 16 px = 4 m2
    cls[10:30, 10:30] = 1  # 400 px = 100 m2
    gdf = vectorize(cls, T, "EPSG:32616", ["bg", "b"], config=VectorizeConfig(min_area_m2=5))
    assert gdf.area_m2.tolist() == [100.0]


def test_geographic_crs_measures_in_metres():
    # ~1 m pixels at 33.7 N: 1e-5 deg lat = 1.11 m, 1.2e-5 deg lon = 1.11 m
    t = from_origin(-84.5, 33.7, 1.2e-5, 1e-5)
    cls = np.zeros((50, 50), np.uint8)
    cls[5:25, 5:25] = 1
    gdf = vectorize(cls, t, "EPSG:4326", ["bg", "b"], config=VectorizeConfig(min_area_m2=100))
    assert gdf.crs.to_epsg() == 4326
    assert len(gdf) == 1
    expected = 400 * (1.2e-5 * 111_320 * np.cos(np.radians(33.6998))) * (1e-5 * 110_900)
    assert gdf.area_m2.iloc[0] == pytest.approx(expected, rel=0.01)
    gdf2 = vectorize(cls, t, "EPSG:4326", ["bg", "b"], config=VectorizeConfig(min_area_m2=600))
    assert gdf2.empty


def test_simplify_tolerance_in_metres_for_both_crs_kinds():
    cls = np.zeros((60, 60), np.uint8)
    for r in range(10, 50):  # a staircase diagonal edge
        cls[r, 10 : 10 + (r - 10) + 1] = 1
    raw = vectorize(cls, T, "EPSG:32616", ["bg", "b"])
    simp = vectorize(cls, T, "EPSG:32616", ["bg", "b"], config=VectorizeConfig(simplify_m=1.0))
    n_raw = shapely.get_num_coordinates(raw.geometry.iloc[0])
    n_simp = shapely.get_num_coordinates(simp.geometry.iloc[0])
    assert n_simp < n_raw / 5 and simp.geometry.is_valid.all()
    assert simp.area_m2.iloc[0] == pytest.approx(raw.area_m2.iloc[0], rel=0.1)
    tg = from_origin(-84.5, 33.7, 6e-6, 5e-6)  # ~0.55 m pixels
    simp_g = vectorize(cls, tg, "EPSG:4326", ["bg", "b"], config=VectorizeConfig(simplify_m=1.0))
    assert simp_g.crs.to_epsg() == 4326
    assert shapely.get_num_coordinates(simp_g.geometry.iloc[0]) < n_raw / 5
    tiny = vectorize(cls, tg, "EPSG:4326", ["bg", "b"], config=VectorizeConfig(simplify_m=0.01))
    assert shapely.get_num_coordinates(tiny.geometry.iloc[0]) > n_raw / 2


def test_min_area_holds_after_simplification():
    cls = np.zeros((60, 60), np.uint8)
    cls[5:9, 5:10] = 1      # 20 px = 5.0 m2 before simplification
    cls[20:21, 20:40] = 1   # a 1-px-wide line, 5.0 m2, simplifies to almost nothing
    cls[30:50, 30:50] = 1   # 100 m2
    gdf = vectorize(cls, T, "EPSG:32616", ["bg", "b"],
                    config=VectorizeConfig(min_area_m2=5, simplify_m=0.5))
    assert (gdf.area_m2 >= 5).all() and len(gdf) >= 1
