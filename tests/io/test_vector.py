import json

import geopandas as gpd
import numpy as np
import pytest
import shapely

from geounet.errors import MissingDependencyError, OutputExistsError, OutputNotWritableError, UnsupportedFormatError
from geounet.io.atomic import OutputSet, atomic_path
from geounet.io.vector import read_vector
from geounet.io.writers import vector_format, write_vector


def frame(crs="EPSG:32616"):
    poly = shapely.box(733610, 3725100, 733620, 3725110).difference(
        shapely.box(733612, 3725102, 733614, 3725104))
    return gpd.GeoDataFrame(
        {"class_id": np.array([1, 1], np.int32), "class_name": ["building", "building"],
         "area_m2": [96.0, 25.0], "score": [0.9, 0.7]},
        geometry=[poly, shapely.box(733630, 3725100, 733635, 3725105)], crs=crs)


@pytest.fixture(params=["arrow", "append"])
def sink(request, monkeypatch):
    """Both writers: pyarrow's stream, and the default install's appends (no pyarrow)."""
    import geounet.io.vector as vector

    if request.param == "append":
        monkeypatch.setattr(vector, "installed", lambda name: name != "pyarrow")
    return request.param


@pytest.mark.parametrize("ext,epsg", [(".gpkg", 32616), (".fgb", 32616), (".parquet", 32616),
                                      (".geojson", 4326), (".json", 4326)])
def test_formats_read_back_with_right_crs(tmp_path, ext, epsg, sink):
    gdf = frame()
    path = tmp_path / f"out{ext}"
    if sink == "append" and ext == ".parquet":
        with pytest.raises(MissingDependencyError, match=r"geounet\[arrow\]"):
            write_vector(gdf, path)
        return
    write_vector(gdf, path)
    back = read_vector(path)
    assert back.crs.to_epsg() == epsg
    assert len(back) == 2
    assert set(["class_id", "class_name", "area_m2", "score"]) <= set(back.columns)
    back = back.to_crs(32616).sort_values("area_m2", ascending=False)  # FlatGeobuf reorders
    tol = 0.05 if epsg == 4326 else 1e-6  # RFC 7946: 7 decimals of a degree ~ 1 cm
    for a, b in zip(gdf.geometry, back.geometry):
        assert a.symmetric_difference(b).area < tol * a.length
    assert len(back.geometry.iloc[0].interiors) == 1


def test_geojson_is_rfc7946(tmp_path):
    path = tmp_path / "out.geojson"
    write_vector(frame(), path)
    doc = json.loads(path.read_text())
    assert "crs" not in doc  # RFC 7946 has no crs member: always lon/lat WGS84
    x, y = doc["features"][0]["geometry"]["coordinates"][0][0]
    assert -85 < x < -84 and 33 < y < 34  # lon, lat order
    ring = doc["features"][0]["geometry"]["coordinates"][0]
    assert shapely.LinearRing(ring).is_ccw  # exterior counter-clockwise (right-hand rule)


def test_empty_frame_writes(tmp_path, sink):
    from geounet.io.vector import empty_frame

    for ext in (".geojson", ".gpkg", ".fgb") + ((".parquet",) if sink == "arrow" else ()):
        write_vector(empty_frame("EPSG:32616"), tmp_path / f"e{ext}")
        assert read_vector(tmp_path / f"e{ext}").empty


def test_unknown_extension():
    with pytest.raises(UnsupportedFormatError, match=r"\.shp"):
        vector_format("out.shp")


def test_atomic_outputs(tmp_path):
    target = tmp_path / "a.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []  # nothing left, no temp file either
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".")
        tmp.write_text("done")
    assert target.read_text() == "done"
    with pytest.raises(OutputExistsError, match="--overwrite"):
        with atomic_path(target):
            pass
    with atomic_path(target, overwrite=True) as tmp:
        tmp.write_text("again")
    assert target.read_text() == "again"


def test_output_checks(tmp_path):
    with pytest.raises(OutputNotWritableError, match="does not exist"):
        OutputSet().add(tmp_path / "missing" / "x.geojson")
    with pytest.raises(OutputNotWritableError, match="is a folder"):
        OutputSet().add(tmp_path)
    outs = OutputSet()
    outs.add(tmp_path / "x.tif")
    with pytest.raises(OutputNotWritableError, match="twice"):
        outs.add(tmp_path / "x.tif")


def test_committed_outputs_get_the_default_permissions(tmp_path):
    import os
    import stat

    from geounet.io.atomic import atomic_path

    with atomic_path(tmp_path / "model.safetensors") as tmp:
        tmp.write_bytes(b"x")
        os.chmod(tmp, 0o600)  # as safetensors creates its files
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "model.safetensors").stat().st_mode) == 0o666 & ~umask


def test_geojson_rounds_attributes_and_coordinates(tmp_path, sink):
    gdf = frame()
    gdf["score"] = [0.917752054715767, 0.70004999]
    gdf["area_m2"] = [96.123456, 25.004999]
    write_vector(gdf, tmp_path / "out.geojson")
    write_vector(gdf, tmp_path / "out.gpkg")
    text = (tmp_path / "out.geojson").read_text()
    props = [f["properties"] for f in json.loads(text)["features"]]
    assert [p["score"] for p in props] == [0.9178, 0.7]
    assert [p["area_m2"] for p in props] == [96.12, 25.0]
    coords = json.loads(text)["features"][0]["geometry"]["coordinates"][0]
    assert max(len(repr(c).split(".")[1]) for xy in coords for c in xy) <= 7
    full = read_vector(tmp_path / "out.gpkg")  # binary formats keep float64
    assert full["score"].tolist() == gdf["score"].tolist()


def test_append_sink_streams_batches_in_order(tmp_path, sink):
    from geounet.io.vector import open_vector_sink

    out = open_vector_sink(tmp_path / "s.gpkg", "EPSG:32616")
    assert type(out).__name__ == ("VectorSink" if sink == "arrow" else "AppendVectorSink")
    for k in range(3):
        gdf = frame()
        gdf["area_m2"] = [float(k), k + 0.5]
        out.write(gdf)
    out.close()
    back = read_vector(tmp_path / "s.gpkg")
    assert back["area_m2"].tolist() == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
