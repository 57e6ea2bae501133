"""Runtimes: torch, onnxruntime and OpenVINO agree; auto's rule; the ONNX export cache."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys

import numpy as np
import pytest

import geounet
from builders import LANDSAT_SCENE, SAMPLE_SCENE, random_scene, tiny_model
from geounet.config import PredictConfig, TilingConfig
from geounet.errors import DeviceError, InvalidOptionError, MissingDependencyError
from geounet.errors import OutputNotWritableError
from geounet.models.modelfile import load_model
from geounet.onnx_cache import onnx_graph
from geounet.pipeline import predictors
from geounet.pipeline.predictors import choose_runtime, make_predictor

SAMPLES = [(SAMPLE_SCENE, "buildings-atlanta"), (LANDSAT_SCENE, "landcover-landsat7")]


def run(scene, model, runtime, **kw):
    return geounet.predict(scene, None, model=model, keep_arrays=True,
                           predict=PredictConfig(device="cpu", runtime=runtime, **kw))


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
@pytest.mark.parametrize(("scene", "model"), SAMPLES, ids=[m for _, m in SAMPLES])
def test_fp32_runtimes_agree_with_torch(scene, model, runtime):
    ref, got = run(scene, model, "torch"), run(scene, model, runtime)
    valid = ref.classes != 255
    assert np.array_equal(valid, got.classes != 255)
    assert np.nanmax(np.abs(ref.probs - got.probs)) <= 1e-4
    assert np.mean(ref.classes[valid] == got.classes[valid]) >= 0.9999


def test_tta_and_an_odd_tile_size_on_onnxruntime():
    """Tiles of 200 px run on a graph of 208 px (padded as torch pads them); TTA works."""
    kw = {"tta": "flips"}
    tiling = TilingConfig(200, 40)
    ref = geounet.predict(SAMPLE_SCENE, None, keep_arrays=True, tiling=tiling,
                          predict=PredictConfig(device="cpu", runtime="torch", **kw))
    got = geounet.predict(SAMPLE_SCENE, None, keep_arrays=True, tiling=tiling,
                          predict=PredictConfig(device="cpu", runtime="onnxruntime", **kw))
    assert np.nanmax(np.abs(ref.probs - got.probs)) <= 1e-4


def test_auto_rule(monkeypatch, model_file):
    loaded = load_model(model_file)
    cpu = PredictConfig(device="cpu")
    assert choose_runtime(loaded, cpu)[0] == "torch"
    assert choose_runtime(loaded, PredictConfig(runtime="openvino")) == ("openvino", "asked for")
    real = predictors.installed
    monkeypatch.setattr(predictors, "installed", lambda m: m != "torch" and real(m))
    assert choose_runtime(loaded, cpu) == ("onnxruntime", "torch is not installed")
    monkeypatch.setattr(predictors, "installed", lambda m: m == "openvino")
    assert choose_runtime(loaded, cpu)[0] == "openvino"


def test_an_onnx_model_and_wrong_runtime_choices(tmp_path, model_file):
    onnx_model = load_model(geounet.export_onnx(model_file, tmp_path / "m.onnx"))
    assert choose_runtime(onnx_model, PredictConfig(device="cpu"))[0] == "onnxruntime"
    with pytest.raises(InvalidOptionError, match="runtime torch runs .safetensors models"):
        make_predictor(onnx_model, PredictConfig(device="cpu", runtime="torch"))
    with pytest.raises(DeviceError, match="openvino runs on the CPU"):
        make_predictor(onnx_model, PredictConfig(device="cuda", runtime="openvino"))
    with pytest.raises(InvalidOptionError, match="runs fp32 here"):
        make_predictor(onnx_model, PredictConfig(runtime="onnxruntime", precision="bf16"))
    with pytest.raises(ValueError, match="runtime 'tensorrt' is not understood"):
        PredictConfig(runtime="tensorrt")


def test_missing_openvino_names_the_extra(monkeypatch, model_file):
    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'geounet\[openvino\]'"):
        make_predictor(load_model(model_file), PredictConfig(device="cpu", runtime="openvino"))


def test_cache_reuses_rebuilds_and_keys_on_the_tile(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOUNET_CACHE_DIR", str(tmp_path / "cache"))
    loaded = load_model(tiny_model(tmp_path / "m.safetensors"))
    first = onnx_graph(loaded, 64)
    assert first.parent == tmp_path / "cache" / "onnx" and first.suffix == ".onnx"
    sums = first.with_name(first.name + ".sha256")
    assert sums.exists()
    mtime = first.stat().st_mtime_ns
    assert onnx_graph(loaded, 64) == first and first.stat().st_mtime_ns == mtime  # reused
    assert onnx_graph(loaded, 62) == first  # 62 px tiles pad to the same 64 px graph (x4)
    assert onnx_graph(loaded, 96) != first  # another tile size, another entry
    first.write_bytes(first.read_bytes()[:100])  # a truncated entry ...
    again = onnx_graph(loaded, 64)  # ... is exported again
    assert again == first and first.stat().st_size > 1000
    make_predictor(loaded, PredictConfig(device="cpu", runtime="onnxruntime"), 64)
    assert sorted(p.name for p in (tmp_path / "cache" / "onnx").iterdir() if p.name[0] == ".") == []


def _export(path, cache):
    import os

    os.environ["GEOUNET_CACHE_DIR"] = cache
    from geounet.models.modelfile import load_model as load
    from geounet.onnx_cache import onnx_graph as graph

    return str(graph(load(path), 64))


def test_two_processes_exporting_at_once_are_safe(tmp_path):
    model = tiny_model(tmp_path / "m.safetensors")
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        paths = pool.starmap(_export, [(str(model), str(tmp_path / "c"))] * 2)
    assert paths[0] == paths[1]
    entries = sorted(p.name for p in (tmp_path / "c" / "onnx").iterdir())
    assert len(entries) == 2 and entries[1] == entries[0] + ".sha256"
    predictors.OnnxPredictor(paths[0], "cpu")  # a readable graph


def test_unwritable_cache_is_one_clear_error(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("GEOUNET_CACHE_DIR", str(tmp_path / "file" / "cache"))
    loaded = load_model(tiny_model(tmp_path / "m.safetensors"))
    with pytest.raises(OutputNotWritableError, match="GEOUNET_CACHE_DIR"):
        onnx_graph(loaded, 64)


def test_cli_says_which_runtime_and_why(tmp_path, model_file):
    scene = random_scene(tmp_path / "s.tif", 100, 80)
    geounet_exe = [sys.executable, "-m", "geounet"]
    out = subprocess.run([*geounet_exe, "predict", str(scene), "-o", str(tmp_path / "o.fgb"),
                          "--model", str(model_file), "--device", "cpu", "-v"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "runtime torch (torch is installed; on this project's AVX-512 and AVX2 CPUs" in out.stderr


def test_fastest_measures_once_then_uses_the_cached_choice(tmp_path, monkeypatch):
    import json

    from geounet.pipeline import calibrate

    monkeypatch.setenv("GEOUNET_CACHE_DIR", str(tmp_path / "cache"))
    loaded = load_model(tiny_model(tmp_path / "m.safetensors"))
    calls = []
    real = dict(predictors.RUNTIMES)

    def counting(name):
        def factory(*args):
            calls.append(name)
            return real[name](*args)
        return factory

    monkeypatch.setattr(predictors, "RUNTIMES", {n: counting(n) for n in real})
    config = PredictConfig(device="cpu", runtime="fastest")
    name, why = predictors.resolve_runtime(loaded, config, 64)
    assert sorted(calls) == ["onnxruntime", "openvino", "torch"]  # every installed runtime
    assert name in calls and "just measured" in why
    stored = json.loads((tmp_path / "cache" / "runtimes.json").read_text())
    (entry,) = stored.values()
    assert entry["runtime"] == name and set(entry["mpx_s"]) == {"torch", "onnxruntime",
                                                                "openvino"}
    assert max(entry["mpx_s"], key=entry["mpx_s"].get) == name
    calls.clear()
    assert predictors.resolve_runtime(loaded, config, 64)[0] == name
    assert calls == []  # the cached choice: nothing measured again
    predictors.resolve_runtime(loaded, config, 96)  # another tile size is measured anew
    assert len(calls) == 3
    assert calibrate.calibration_key(loaded, config, 64) != calibrate.calibration_key(
        loaded, PredictConfig(device="cpu", runtime="fastest", batch_size=8), 64)
    (tmp_path / "cache" / "runtimes.json").write_text("{not json")  # corrupt: measured anew
    calls.clear()
    predictors.resolve_runtime(loaded, config, 64)
    assert len(calls) == 3


def test_fastest_from_the_cli(tmp_path, model_file):
    scene = random_scene(tmp_path / "s.tif", 100, 80)
    out = subprocess.run([sys.executable, "-m", "geounet", "predict", str(scene), "-o",
                          str(tmp_path / "o.fgb"), "--model", str(model_file), "--device", "cpu",
                          "--runtime", "fastest", "-v"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "(fastest here, " in out.stderr and "Mpx/s" in out.stderr
