"""ONNX export: probabilities match PyTorch, Deepness metadata, prediction with onnxruntime."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import rasterio
from rasterio.windows import Window

from builders import SAMPLE_SCENE, tiny_model
from geounet.cli import cli
from geounet.errors import ModelFileError
from geounet.export import export_onnx
from geounet.io.read import BandScaler, Scene
from geounet.models import load_model, read_metadata
from geounet.models.onnx_metadata import read_onnx_metadata
from geounet.pipeline.predictors import OnnxPredictor, Predictor
from geounet.pipeline.tiling import padded_size


def real_tiles(meta, tile, n=2):
    with Scene(SAMPLE_SCENE, meta.bands) as sc:
        out = []
        for i in range(n):
            data, valid = sc.read(Window(100 * i, 300, tile, tile))
            out.append(BandScaler(meta.band_mean, meta.band_std)(data, valid))
    return np.stack(out)


@pytest.mark.parametrize("spec", ["buildings-atlanta", "multiclass"])
def test_onnx_matches_pytorch_on_real_tiles(tmp_path, spec):
    if spec == "multiclass":
        spec = str(tiny_model(tmp_path / "mc.safetensors", classes=("bg", "a", "b")))
    loaded = load_model(spec)
    meta = loaded.metadata
    out = export_onnx(loaded, tmp_path / "m.onnx", tile_size_px=200)
    tile = padded_size(200, meta.pad_multiple)
    x = real_tiles(meta, tile)
    ref = Predictor(loaded.module, meta.binary, meta.pad_multiple, "cpu", "fp32", False)(x)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].shape[0] == "batch"  # dynamic batch
    assert sess.get_inputs()[0].shape[2:] == [tile, tile]  # fixed tile size
    got = sess.run(None, {"input": x})[0]
    assert got.shape == ref.shape == (2, meta.out_channels, tile, tile)
    assert np.abs(got - ref).max() <= 1e-4


def test_deepness_metadata(tmp_path):
    loaded = load_model("buildings-atlanta")
    meta = loaded.metadata
    path = export_onnx(loaded, tmp_path / "b.onnx")
    props = {p.key: json.loads(p.value) for p in onnx.load(str(path)).metadata_props}
    assert props["model_type"] == "Segmentor"
    assert {int(k): v for k, v in props["class_names"].items()} == {0: "background",
                                                                     1: "building"}
    assert props["resolution"] == pytest.approx(meta.gsd_m * 100)  # cm per pixel
    assert props["tiles_size"] == props["tile_size"] == meta.tile_size_px  # docs, code
    # an integer percent: Deepness reads it with int() (12.5 would become 12)
    assert props["tiles_overlap"] == round(100 * meta.overlap_px / meta.tile_size_px)
    assert isinstance(props["tiles_overlap"], int)
    assert props["seg_small_segment"] == 0  # Deepness's median blur and GeoDeep's sieve off
    assert props["seg_thresh"] == meta.threshold
    # Deepness divides by 255 first: its standardisation must equal geounet's scaling
    x = np.array([50.0, 457.0, 2000.0])
    ours = (x - meta.band_mean[0]) / meta.band_std[0]
    theirs = (x / 255 - props["standardization_mean"][0]) / props["standardization_std"][0]
    np.testing.assert_allclose(theirs, ours, rtol=1e-9)
    assert props["geounet"]["name"] == "buildings-atlanta"


def test_predict_with_onnx_model_gives_the_same_classes(tmp_path, runner):
    r = runner.invoke(cli, ["export", "buildings-atlanta", "--onnx", str(tmp_path / "b.onnx"),
                            "-q"])
    assert r.exit_code == 0, r.output
    outs = {}
    for name, model in (("onnx", tmp_path / "b.onnx"), ("torch", "buildings-atlanta")):
        r = runner.invoke(cli, ["predict", str(SAMPLE_SCENE), "-o", str(tmp_path / f"{name}.gpkg"),
                                "--model", str(model), "--mask-out",
                                str(tmp_path / f"{name}.tif"), "--device", "cpu", "-q"])
        assert r.exit_code == 0, r.output
        with rasterio.open(tmp_path / f"{name}.tif") as ds:
            outs[name] = ds.read(1)
    agree = np.mean(outs["onnx"] == outs["torch"])
    assert agree > 0.9999  # fp32 both; a pixel at exactly the threshold may round apart
    r = runner.invoke(cli, ["predict", str(SAMPLE_SCENE), "-o", str(tmp_path / "x.gpkg"),
                            "--model", str(tmp_path / "b.onnx"), "--tile-size", "128"])
    assert r.exit_code == 1 and "takes tiles of" in r.output


def test_onnx_model_loads_and_runs_with_onnxruntime(tmp_path):
    loaded = load_model("buildings-atlanta")
    path = export_onnx(loaded, tmp_path / "b.onnx", tile_size_px=128)
    onnx_model = load_model(path)
    assert onnx_model.module is None and onnx_model.format == "onnx"
    assert onnx_model.runtime == "onnxruntime"
    assert read_metadata(path) == read_onnx_metadata(path) == onnx_model.metadata
    assert onnx_model.metadata.tile_size_px == OnnxPredictor(path, "cpu").tile == 128
    with pytest.raises(ModelFileError, match="already an ONNX model"):
        export_onnx(onnx_model, tmp_path / "again.onnx")


def test_old_module_paths_still_work_and_warn(tmp_path):
    import geounet.export
    import geounet.inference
    import geounet.pipeline.predictors as predictors

    with pytest.warns(DeprecationWarning, match="geounet.pipeline.predictors.Predictor"):
        assert geounet.inference.Predictor is predictors.Predictor
    path = export_onnx("buildings-atlanta", tmp_path / "b.onnx")
    with pytest.warns(DeprecationWarning, match="geounet.models.onnx_metadata.read_onnx_metadata"):
        old = geounet.export.read_onnx_metadata
    assert old is read_onnx_metadata and old(path).name == "buildings-atlanta"
    with pytest.warns(DeprecationWarning, match="OnnxPredictor"):
        assert geounet.export.OnnxPredictor is OnnxPredictor
    with pytest.warns(DeprecationWarning, match="METADATA_KEY"):
        assert geounet.export.ONNX_METADATA_KEY == "geounet"


def test_missing_onnx_names_the_extra(tmp_path, monkeypatch):
    import sys

    from geounet.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx -> ImportError
    message = r"onnx is not installed; install it with: pip install 'geounet\[torch\]'"
    with pytest.raises(MissingDependencyError, match=message):
        export_onnx("buildings-atlanta", tmp_path / "b.onnx")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ImportError, match="onnxruntime is not installed"):
        OnnxPredictor(tmp_path / "b.onnx")
