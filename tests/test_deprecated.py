"""Names that moved in 0.2 still work from their old modules, with a DeprecationWarning."""

from __future__ import annotations

import importlib

import pytest

MOVED = [
    ("geounet.tiling", "plan_tiles", "geounet.pipeline.tiling", "plan_tiles"),
    ("geounet.stitch", "StripStitcher", "geounet.pipeline.stitch", "StripStitcher"),
    ("geounet.sieve", "sieve_classes", "geounet.pipeline.sieve", "sieve_classes"),
    ("geounet.polygons", "vectorize", "geounet.pipeline.arrays", "vectorize"),
    ("geounet.polygons", "StreamingVectorizer", "geounet.pipeline.vectorize",
     "StreamingVectorizer"),
    ("geounet.polygons", "finish_polygons", "geounet.pipeline.postprocess", "finish_polygons"),
    ("geounet.polygons", "CLASS_NODATA", "geounet.constants", "CLASS_NODATA"),
    ("geounet.io.write", "write_vector", "geounet.io.writers", "write_vector"),
    ("geounet.io.write", "read_vector", "geounet.io.vector", "read_vector"),
    ("geounet.io.write", "RowWriter", "geounet.io.rasters", "RowWriter"),
]


@pytest.mark.parametrize(("old", "name", "new", "new_name"), MOVED)
def test_old_name_warns_and_is_the_new_object(old, name, new, new_name):
    module = importlib.import_module(old)
    with pytest.warns(DeprecationWarning, match=f"{old}.{name} moved to {new}.{new_name}"):
        obj = getattr(module, name)
    assert obj is getattr(importlib.import_module(new), new_name)


def test_unknown_old_name_is_an_attribute_error():
    import geounet.polygons

    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        geounet.polygons.nothing  # noqa: B018


def test_pipeline_package_keeps_its_names():
    import geounet.pipeline as pipeline
    from geounet.pipeline.run import predict_scene

    assert pipeline.predict_scene is predict_scene
    with pytest.raises(AttributeError):
        pipeline.nothing  # noqa: B018
