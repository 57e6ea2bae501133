"""ONNX export: probabilities match PyTorch, Deepness metadata, and prediction through onnxruntime."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import rasterio
from rasterio.windows import Window

from conftest import SAMPLE_SCENE, tiny_model
from geounet.cli import cli
from geounet.export import export_onnx
from geounet.io.read import BandScaler, Scene
from geounet.models import load_model
from geounet.inference import Predictor
from geounet.tiling import padded_size


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
    assert props["tiles_size"] == meta.tile_size_px
    assert props["tiles_overlap"] == pytest.approx(100 * meta.overlap_px / meta.tile_size_px)
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
