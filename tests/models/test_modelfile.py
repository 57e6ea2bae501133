"""The model file: safetensors round trip, errors, bundled models, model arguments."""

import json

import numpy as np
import pytest
import torch

from builders import tiny_model
from geounet.errors import InputNotFoundError, ModelFileError, UnknownModelError
from geounet.models import build_model, bundled_models, load_model, read_metadata
from geounet.models.modelfile import (
    METADATA_KEY,
    LoadedModel,
    as_loaded,
    format_of,
    model_spec,
    resolve_model_path,
)


def test_model_file_round_trip(tmp_path):
    path = tiny_model(tmp_path / "m.safetensors", bands=(3, 1), classes=("bg", "a", "b"))
    meta = read_metadata(path)
    assert meta.bands == [3, 1] and meta.classes == ["bg", "a", "b"] and not meta.binary
    loaded = load_model(path)
    torch.manual_seed(0)
    ref = build_model("unet", 2, 3, base_channels=4, depth=2).eval()
    x = torch.randn(1, 2, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.module(x), ref(x))
    header = path.read_bytes()
    assert b"__metadata__" in header and b"pickle" not in header


def test_model_file_errors(tmp_path):
    good = tiny_model(tmp_path / "good.safetensors")
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ModelFileError, match="corrupt"):
        load_model(corrupt)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelFileError):
        load_model(junk)
    from safetensors.torch import save_file

    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(ModelFileError, match="without geounet metadata"):
        load_model(plain)
    # metadata says depth 3 but the weights are depth 2: another architecture
    raw = good.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    meta = json.loads(header["__metadata__"][METADATA_KEY])
    meta["arch_args"]["depth"] = 3
    header["__metadata__"][METADATA_KEY] = json.dumps(meta)
    hb = json.dumps(header).encode()
    hb += b" " * (-len(hb) % 8)
    other = tmp_path / "other.safetensors"
    other.write_bytes(len(hb).to_bytes(8, "little") + hb + raw[8 + n :])
    with pytest.raises(ModelFileError, match="do not fit architecture 'unet'"):
        load_model(other)
    meta["architecture"] = "mystery"
    header["__metadata__"][METADATA_KEY] = json.dumps(meta)
    hb = json.dumps(header).encode()
    hb += b" " * (-len(hb) % 8)
    other.write_bytes(len(hb).to_bytes(8, "little") + hb + raw[8 + n :])
    with pytest.raises(UnknownModelError, match="mystery"):
        load_model(other)


def test_lazy_load_builds_the_module_on_first_use(tmp_path):
    good = tiny_model(tmp_path / "good.safetensors")
    lazy = load_model(good, lazy=True)
    assert lazy._loader is not None and lazy.metadata == read_metadata(good)
    eager = load_model(good)
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(lazy.module(x), eager.module(x))
    assert lazy._loader is None and lazy.module is lazy.module  # built once
    raw = good.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(raw[: 8 + n + 16])  # header intact, weights cut short
    late = load_model(broken, lazy=True)  # the metadata reads ...
    with pytest.raises(ModelFileError, match="corrupt"):
        late.module  # ... the weights fail where they are built


def test_a_run_on_an_onnx_runtime_never_imports_torch(tmp_path):
    import subprocess
    import sys

    from builders import SAMPLE_SCENE

    code = ("import sys, geounet\n"
            "from geounet.config import PredictConfig\n"
            f"r = geounet.predict({str(SAMPLE_SCENE)!r}, None, "
            "predict=PredictConfig(runtime='onnxruntime'))\n"
            "assert len(r.footprints) > 20\n"
            "print('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_model_names_and_paths(tmp_path):
    with pytest.raises(UnknownModelError, match="buildings-atlanta"):
        resolve_model_path("no-such-model")
    with pytest.raises(InputNotFoundError):
        resolve_model_path(tmp_path / "missing.safetensors")
    assert "buildings-atlanta" in bundled_models()
    assert resolve_model_path(None) == bundled_models()["buildings-atlanta"]


def test_bundled_default_model_metadata():
    path = bundled_models()["buildings-atlanta"]
    meta = read_metadata(path)
    assert meta.bands == [1] and meta.classes == ["background", "building"]
    assert meta.gsd_m == 0.5 and meta.training["scene"] == "atlanta_sample.tif"
    assert {"pixel_iou", "building_f1"} <= set(meta.evaluation)
    assert path.stat().st_size < 5_000_000  # a few MB at most
    m = load_model("buildings-atlanta")
    assert np.isfinite(sum(float(p.sum()) for p in m.module.parameters()))


def test_bundled_landcover_model_metadata():
    path = bundled_models()["landcover-landsat7"]
    meta = read_metadata(path)
    assert meta.bands == [1, 2, 3, 4, 5] and meta.background_class is None
    assert meta.classes == ["developed", "agriculture", "herbaceous", "shrubland", "forest",
                            "water", "sediment"]
    assert meta.product_classes == list(range(7)) and meta.colors()[4] == "#38814e"  # forest
    assert meta.gsd_m == 28.5 and meta.training["scene"] == "landsat_raleigh.tif"
    assert meta.training["config"]["unlabelled"] == "ignore"
    assert len(meta.training["held_out_rows"]) == meta.evaluation["polygons"] == 10
    assert {"overall_accuracy", "mean_iou", "per_class", "confusion"} <= set(meta.evaluation)
    assert (path.stat().st_mode & 0o044) == 0o044  # readable by everyone, like other files


def test_metadata_background_class_is_checked():
    from geounet.errors import ModelFileError
    from geounet.models.metadata import ModelMetadata

    meta = read_metadata(bundled_models()["buildings-atlanta"])
    import dataclasses

    bad = dataclasses.replace(meta, background_class=5)
    with pytest.raises(ModelFileError, match="background class 5"):
        ModelMetadata.from_json(bad.to_json())


def test_as_loaded_and_model_spec(tmp_path):
    path = tiny_model(tmp_path / "m.safetensors")
    loaded = as_loaded(path)
    assert isinstance(loaded, LoadedModel) and loaded.format == "safetensors"
    assert loaded.runtime == "torch" and as_loaded(loaded) is loaded
    assert model_spec(loaded) == model_spec(path) == str(path)
    assert model_spec("buildings-atlanta") == str(bundled_models()["buildings-atlanta"])
    assert model_spec(None) == str(bundled_models()["buildings-atlanta"])
    with pytest.raises(UnknownModelError, match="buildings-atlanta"):
        model_spec("no-such-model")


def test_model_formats_by_suffix():
    assert format_of("a.safetensors").runtime == "torch"
    assert format_of("a.ONNX").name == "onnx" and format_of("a.onnx").runtime == "onnxruntime"
    assert format_of("a.bin").name == "safetensors"  # read as safetensors, as before


def test_unet_files_without_align_corners_load_as_they_were_trained(tmp_path):
    """geounet 0.1 files record no align_corners and upsampled with True; new files record False."""
    from dataclasses import replace

    from geounet.models.metadata import ModelMetadata
    from geounet.models.safetensors_file import save_model

    old = json.loads(read_metadata(bundled_models()["buildings-atlanta"]).to_json())
    old["arch_args"].pop("align_corners", None)
    meta = ModelMetadata.from_json(json.dumps(old))
    assert meta.arch_args["align_corners"] is True
    legacy = build_model("unet", 1, 1, **meta.arch_args)
    ups = [m for m in legacy.modules() if isinstance(m, torch.nn.Upsample)]
    assert ups and all(m.align_corners for m in ups)
    new = build_model("unet", 1, 1, base_channels=8, depth=2)
    assert not any(m.align_corners for m in new.modules() if isinstance(m, torch.nn.Upsample))
    # save_model records the module's value when the metadata leaves it out
    path = save_model(new, replace(meta, arch_args={"base_channels": 8, "depth": 2}),
                      tmp_path / "n.safetensors")
    assert read_metadata(path).arch_args["align_corners"] is False
