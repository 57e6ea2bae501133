"""The plugin manager: geounet's own implementations registered like plugins, calls through pluggy."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely

from builders import random_scene
from geounet import hooks
from geounet.config import VectorizeConfig
from geounet.hookspecs import hookimpl
from geounet.io.vector import VectorSink
from geounet.io.writers import open_sink, vector_format
from geounet.pipeline.run import predict_scene


@pytest.fixture
def registered():
    """Register plugin objects for one test, unregistered afterwards."""
    pm = hooks.plugin_manager()
    added = []

    def register(plugin, name):
        pm.register(plugin, name=name)
        added.append(plugin)
        return plugin

    yield register
    for plugin in added:
        pm.unregister(plugin)


def test_builtins_are_registered_as_plugins(monkeypatch):
    pm = hooks.plugin_manager()
    for name, module in hooks.DEFAULT_PLUGINS.items():
        assert pm.get_plugin(name) is module
    names = {i.plugin_name for i in pm.hook.geounet_vector_writers.get_hookimpls()}
    assert "geounet.io.vector" in names
    writers = hooks.vector_writers()
    assert {".geojson", ".json", ".gpkg", ".fgb", ".parquet"} <= set(writers)
    assert vector_format("x.gpkg") == "GPKG"
    assert not hooks.has_implementations("geounet_postprocess_classes")
    assert hooks.has_implementations("geounet_postprocess_footprints")
    assert not hooks.has_implementations("geounet_postprocess_footprints", plugins_only=True)


def test_builtin_writers_also_without_plugins(tmp_path):
    import subprocess
    import sys

    code = ("from geounet import hooks; w = hooks.vector_writers(); "
            "assert '.gpkg' in w and '.parquet' in w, w; "
            "assert [n for n, _ in hooks.plugin_manager().list_name_plugin()] == "
            "list(hooks.DEFAULT_PLUGINS), hooks.plugin_manager().list_name_plugin(); print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"GEOUNET_DISABLE_PLUGINS": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_open_sink_gives_the_builtin_writer_its_geometry_type(tmp_path):
    sink = open_sink(tmp_path / "a.gpkg", "EPSG:32616", "Unknown")
    assert isinstance(sink, VectorSink) and sink.fmt == "GPKG"
    assert sink.geometry_type == "Unknown"
    sink.close()


def test_chain_goes_through_pluggy_in_order_and_feeds_each_result_on(registered):
    class AddColumn:
        def __init__(self, name):
            self.name = name

        @hookimpl
        def geounet_postprocess_footprints(self, footprints, context):
            # each sees the previous result: geounet's area_m2, then the other plugin's column
            assert footprints["area_m2"].notna().all()
            return footprints.assign(**{self.name: len(footprints.columns)})

    registered(AddColumn("first"), "first")
    registered(AddColumn("second"), "second")
    calls = []
    pm = hooks.plugin_manager()
    undo = pm.add_hookcall_monitoring(
        lambda name, impls, kwargs: calls.append((name, [i.plugin_name for i in impls])),
        lambda outcome, name, impls, kwargs: None)
    try:
        chain = hooks.HookChain("geounet_postprocess_footprints", "footprints")
        raw = gpd.GeoDataFrame({"class_id": [1], "class_name": ["b"], "area_m2": [np.nan],
                                "score": [0.5]}, geometry=[shapely.box(0, 0, 10, 10)],
                               crs="EPSG:32616")
        out = chain(raw, context={"vectorize": VectorizeConfig(), "transform": None})
    finally:
        undo()
    # geounet's own finishing first (tryfirst), then the most recently registered plugin
    assert chain.plugin_names == ["geounet.pipeline.postprocess", "second", "first"]
    assert [c[1] for c in calls] == [["geounet.pipeline.postprocess"], ["second"], ["first"]]
    assert out["area_m2"].tolist() == [100.0]
    assert out["second"].tolist() == [5] and out["first"].tolist() == [6]


def test_a_plugin_that_drops_polygons_is_counted_out(tmp_path, model_file, registered):
    class DropAll:
        @hookimpl
        def geounet_postprocess_footprints(self, footprints, context):
            assert context["vectorize"] == VectorizeConfig()
            return footprints.iloc[:0]

    scene = random_scene(tmp_path / "s.tif", 120, 90)
    before = predict_scene(scene, None, model=model_file)
    assert before.n_polygons > 0
    registered(DropAll(), "drop-all")
    after = predict_scene(scene, tmp_path / "o.gpkg", model=model_file, keep_footprints=True)
    assert after.n_polygons == 0 and len(after.footprints) == 0
    assert len(gpd.read_file(tmp_path / "o.gpkg")) == 0
