"""ONNX models with Deepness's metadata (no geounet key) and GeoDeep's conventions."""

from __future__ import annotations

import json

import numpy as np
import pytest
from foreign_builders import classes_of, rgb_model, rgb_scene

from geounet.errors import GeounetError, ModelFileError
from geounet.models.foreign_onnx import (
    GeoDeepScaler,
    GraphShape,
    fit_output,
    foreign_metadata,
    input_scaler,
)
from geounet.models.metadata import ModelMetadata

SIGMOID = GraphShape(in_channels=3, tile_px=256, out_channels=1, out_rank=4)
DEEPNESS = {  # Deepness's documented keys (creators_add_metadata_to_model.rst), JSON values
    "model_type": '"Segmentor"', "class_names": '{"0": "building"}', "resolution": "30",
    "tiles_size": "256", "tiles_overlap": "25", "standardization_mean": "[0.5, 0.4, 0.3]",
    "standardization_std": "[0.2, 0.2, 0.25]", "seg_thresh": "0.4",
}


def test_deepness_keys_make_the_metadata():
    """Deepness's documented keys become geounet's metadata."""
    meta = foreign_metadata(DEEPNESS, SIGMOID, "/m/roofs.onnx")
    assert meta.name == "roofs" and meta.architecture == "onnx"
    assert meta.classes == ["background", "building"] and meta.binary  # background added
    assert meta.background_class == 0
    assert meta.bands == [1, 2, 3]  # from the input shape
    assert meta.band_mean == pytest.approx([127.5, 102.0, 76.5])  # 255 x standardization_*
    assert meta.band_std == pytest.approx([51.0, 51.0, 63.75])
    assert meta.input_scaling == "standardize"
    assert meta.gsd_m == pytest.approx(0.3)  # 30 cm
    assert (meta.tile_size_px, meta.overlap_px, meta.threshold) == (256, 64, 0.4)
    # Deepness's (x / 255 - m) / s is geounet's (x - 255 m) / (255 s)
    x = np.array([0.0, 90.0, 255.0])
    np.testing.assert_allclose((x / 255 - 0.4) / 0.2, (x - meta.band_mean[1]) / meta.band_std[1])


def test_class_names_as_python_literal_list_and_multiclass():
    """Literal class names, a one-output list, multi-class backgrounds."""
    props = {"model_type": '"Segmentor"',
             "class_names": "[{0: '_background', 1: 'building', 2: 'water', 3: 'road'}]"}
    meta = foreign_metadata(props, GraphShape(4, 128, 4, 4), "lc.onnx")
    assert meta.classes == ["_background", "building", "water", "road"]
    assert meta.background_class == 0 and not meta.binary and meta.bands == [1, 2, 3, 4]
    meta = foreign_metadata({**props, "class_names": '{"0": "forest", "1": "crop", "2": "x"}'},
                            GraphShape(3, 128, 3, 4), "lc.onnx")
    assert meta.background_class is None  # every class is a product


def test_tile_from_tile_size_or_tiles_size_when_the_input_is_dynamic():
    """The input shape, else tile_size, else tiles_size."""
    dynamic = GraphShape(3, 0, 1, 4)
    props = {"model_type": '"Segmentor"', "tiles_overlap": "10"}
    assert foreign_metadata({**props, "tiles_size": "512"}, dynamic, "a").tile_size_px == 512
    meta = foreign_metadata({**props, "tile_size": "320", "tiles_size": "512"}, dynamic, "a")
    assert (meta.tile_size_px, meta.overlap_px) == (320, 32)  # Deepness's code reads tile_size
    assert foreign_metadata({**props, "tile_size": "320"}, SIGMOID, "a").tile_size_px == 256


def test_no_standardization_means_geodeep_scaling():
    """Without standardization_* the model is read with GeoDeep's scaling."""
    meta = foreign_metadata({"model_type": '"Segmentor"',
                             "class_names": '{"0": "not_road", "1": "road"}'},
                            GraphShape(3, 256, 2, 4), "roads.onnx")
    assert meta.input_scaling == "geodeep" and meta.binary and meta.out_channels == 1
    assert meta.band_std == [255.0] * 3 and meta.training["format"] == "geodeep"
    assert meta.gsd_m is None and meta.threshold == 0.5


@pytest.mark.parametrize(("props", "shape", "match"), [
    ({"model_type": '"Detector"'}, SIGMOID, "'Detector' model; geounet runs segmentation"),
    ({}, SIGMOID, "no geounet metadata and no Deepness model_type; export it with geounet"),
    ({"model_type": '"Segmentor"'}, GraphShape(0, 256, 1, 4), "dynamic input channel"),
    ({"model_type": '"Segmentor"'}, GraphShape(3, 256, 1, 4, n_outputs=2), "2 output"),
    ({"model_type": '"Segmentor"', "class_names": '{"0": "a", "2": "b"}'},
     GraphShape(3, 256, 2, 4), r"ids \[0, 2\], expected consecutive"),
    ({"model_type": '"Segmentor"', "class_names": '{"0": "a", "1": "b"}'},
     GraphShape(3, 256, 3, 4), "3 output channel.* but 2 class names"),
    ({"model_type": '"Segmentor"', "class_names": '[{"0": "a"}, {"0": "b"}]'}, SIGMOID,
     "class names for 2 outputs"),
])
def test_refusals_name_the_value_and_the_fix(props, shape, match):
    """Graphs geounet cannot run are refused, naming the file and the fix."""
    with pytest.raises(ModelFileError, match=match) as info:
        foreign_metadata(props, shape, "m.onnx")
    assert isinstance(info.value, GeounetError) and isinstance(info.value, ValueError)
    assert "m.onnx" in str(info.value)


def test_fit_output_shapes_foreign_outputs():
    """(b, h, w) outputs and two-channel binary outputs fit the pipeline."""
    two = np.stack([np.full((4, 4), 0.3), np.full((4, 4), 0.7)])[None].astype(np.float32)
    np.testing.assert_array_equal(fit_output(two, 1), two[:, 1:2])
    assert fit_output(two, 2) is two
    assert fit_output(np.zeros((2, 4, 4), np.float32), 1).shape == (2, 1, 4, 4)


def test_geodeep_scaler_reproduces_geodeep_preprocess():
    """uint8 / 255, uint16 / 65535, floats by the tile's min-max."""
    valid = np.ones((2, 2), bool)
    data = np.array([[[0, 51], [255, 102]]] * 3, np.float32)
    np.testing.assert_allclose(GeoDeepScaler("uint8")(data, valid), data / 255)
    np.testing.assert_allclose(GeoDeepScaler("uint16")(data * 257, valid), data / 255, rtol=1e-6)
    floats = GeoDeepScaler("float32")(data * 0.01 - 1, valid)  # the tile's own min-max
    assert floats.min() == 0 and floats.max() == pytest.approx(1)
    np.testing.assert_allclose(floats, data / 255, atol=1e-6)
    valid[0, 0] = False
    assert GeoDeepScaler("float32")(data, valid)[:, 0, 0].tolist() == [0, 0, 0]
    geo = foreign_metadata({"model_type": '"Segmentor"'}, SIGMOID, "g")
    assert isinstance(input_scaler(geo, "uint8"), GeoDeepScaler)
    std = foreign_metadata(DEEPNESS, SIGMOID, "d")
    assert type(input_scaler(std, "uint8")).__name__ == "BandScaler"


def test_input_scaling_stays_out_of_old_json():
    """The default input scaling is not written; unknown ones are refused."""
    meta = foreign_metadata(DEEPNESS, SIGMOID, "d")
    assert "input_scaling" not in json.loads(meta.to_json())  # geounet 0.1 reads the file
    geo = foreign_metadata({"model_type": '"Segmentor"'}, SIGMOID, "g")
    assert json.loads(geo.to_json())["input_scaling"] == "geodeep"
    assert ModelMetadata.from_json(geo.to_json()) == geo
    raw = json.loads(meta.to_json())
    assert ModelMetadata.from_json(json.dumps(raw)).input_scaling == "standardize"
    with pytest.raises(ModelFileError, match="input scaling 'magic', expected one of"):
        ModelMetadata.from_json(json.dumps({**raw, "input_scaling": "magic"}))


def _keep_only(path, keys, out):
    """Copy an ONNX graph keeping only the ``metadata_props`` named in ``keys``."""
    import onnx

    proto = onnx.load(str(path))
    kept = [(p.key, p.value) for p in proto.metadata_props if p.key in keys]
    del proto.metadata_props[:]
    for k, v in kept:
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(proto, str(out))
    return out


def test_deepness_format_model_runs_with_the_same_classes(tmp_path):
    """Deepness's keys alone give the classes of geounet's metadata."""
    pytest.importorskip("torch")
    from geounet.export import export_onnx
    from geounet.models.modelfile import load_model

    scene = rgb_scene(tmp_path / "rgb.tif", size=200)
    graph = export_onnx(rgb_model(tmp_path), tmp_path / "g.onnx")
    documented = ("model_type", "class_names", "resolution", "tiles_size", "tiles_overlap",
                  "standardization_mean", "standardization_std", "seg_thresh")
    foreign = _keep_only(graph, documented, tmp_path / "deepness.onnx")
    ours, theirs = load_model(graph).metadata, load_model(foreign).metadata
    assert theirs.classes == ours.classes and theirs.input_scaling == "standardize"
    assert (theirs.tile_size_px, theirs.overlap_px) == (ours.tile_size_px, ours.overlap_px)
    a, b = classes_of(scene, graph), classes_of(scene, foreign)
    assert 0.02 < (a == 1).mean() < 0.9  # the scene has buildings and ground
    assert np.mean(a == b) >= 0.9999
