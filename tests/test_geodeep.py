"""geounet's GeoDeep export, run by the real GeoDeep (a test-only, AGPL dependency).

GeoDeep is never imported here or in geounet: it runs in its own process
(``python -c``), as a user would run it, and hands back its mask as a ``.npy`` file.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from foreign_builders import classes_of, iou, rgb_model, rgb_scene

from geounet.errors import InvalidOptionError
from geounet.models.modelfile import load_model

pytest.importorskip("torch")
pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

GEODEEP = """
import sys, numpy as np
from geodeep import segment
np.save(sys.argv[3], segment(sys.argv[1], sys.argv[2], output_type="raw"))
"""


def _has_geodeep() -> bool:
    probe = subprocess.run([sys.executable, "-c", "import geodeep"], capture_output=True)
    return probe.returncode == 0


def _props(path) -> dict:
    import onnx

    return {p.key: json.loads(p.value) for p in onnx.load(str(path)).metadata_props}


def _without(path, keys, out):
    """Copy an ONNX graph without the ``metadata_props`` named in ``keys``."""
    import onnx

    proto = onnx.load(str(path))
    kept = [(p.key, p.value) for p in proto.metadata_props if p.key not in keys]
    del proto.metadata_props[:]
    for k, v in kept:
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(proto, str(out))
    return out


def _probs(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)})[0]


@pytest.mark.skipif(not _has_geodeep(), reason="geodeep is not installed (pip install geodeep)")
def test_geodeep_runs_the_geodeep_export_like_geounet(tmp_path):
    """The real GeoDeep's mask of the export matches geounet's (IoU >= 0.95)."""
    from geounet.export import export_onnx

    scene = rgb_scene(tmp_path / "rgb.tif")
    model = rgb_model(tmp_path)
    graph = export_onnx(model, tmp_path / "gd.onnx", target="geodeep")
    out = tmp_path / "mask.npy"
    run = subprocess.run([sys.executable, "-c", GEODEEP, str(scene), str(graph), str(out)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    theirs = np.load(out) == 1
    ours = classes_of(scene, model) == 1
    assert theirs.shape == ours.shape and 0.05 < ours.mean() < 0.9
    assert iou(theirs, ours) >= 0.95
    # geounet runs the same file as GeoDeep does (input_scaling "geodeep"), and without its
    # geounet key: from the Deepness keys, then as a GeoDeep model (no standardization_*)
    assert iou(classes_of(scene, graph) == 1, ours) >= 0.99
    for drop in (("geounet",), ("geounet", "standardization_mean", "standardization_std")):
        bare = _without(graph, drop, tmp_path / f"bare{len(drop)}.onnx")
        meta = load_model(bare).metadata
        assert meta.input_scaling == ("standardize" if len(drop) == 1 else "geodeep")
        assert meta.classes == ["background", "building"] and meta.out_channels == 1
        assert iou(classes_of(scene, bare) == 1, ours) >= 0.99


def test_geodeep_export_conventions(tmp_path):
    """Keys, three GeoDeep-scaled channels in, [1 - q, q] out at the model's threshold."""
    from geounet.export import export_onnx

    model = rgb_model(tmp_path, threshold=0.3, bands=(3, 1))
    plain = export_onnx(model, tmp_path / "g.onnx", seg_small_segment=4)
    graph = export_onnx(model, tmp_path / "gd.onnx", target="geodeep", scene_dtype="uint16")
    props = _props(graph)
    assert props["tiles_size"] == props["tile_size"] == 64
    assert props["tiles_overlap"] == 12 and isinstance(props["tiles_overlap"], int)  # 12.5 %
    assert props["seg_small_segment"] == 0 and _props(plain)["seg_small_segment"] == 4
    assert props["seg_thresh"] == 0.5 and props["class_names"] == {"0": "background",
                                                                   "1": "building"}
    meta = load_model(graph).metadata
    assert meta.input_scaling == "geodeep" and meta.bands == [1, 2, 3] and meta.threshold == 0.5
    rng = np.random.default_rng(1)
    raw = rng.integers(0, 65536, size=(2, 3, 64, 64)).astype(np.float64)
    ref = _probs(plain, (raw[:, [2, 0]] - 127.0) / 50.0)[:, 0]  # bands 3, 1 standardised
    got = _probs(graph, raw / 65535)  # GeoDeep's uint16 scaling
    assert got.shape == (2, 2, 64, 64)
    np.testing.assert_allclose(got.sum(axis=1), 1, atol=1e-6)
    # GeoDeep zeroes channels under seg_thresh and takes the argmax: geounet's p >= 0.3
    cut = np.where(got < props["seg_thresh"], 0, got).argmax(axis=1)
    close = np.abs(ref - 0.3) < 1e-5
    np.testing.assert_array_equal(cut[~close], (ref >= 0.3)[~close])
    # Deepness standardises x / 255 with the written statistics: the same input
    x = raw[0, 0, 0, 0]
    assert (x / 255 - props["standardization_mean"][0]) / props["standardization_std"][0] == \
        pytest.approx(x / 65535)


@pytest.mark.parametrize(("kw", "match"), [
    ({"scene_dtype": "float32"}, "scene dtype 'float32' cannot be undone.*min-max"),
    ({"target": "qgis"}, "export target 'qgis' is unknown"),
])
def test_geodeep_export_refusals(tmp_path, kw, match):
    """Float scenes, unknown targets and bands beyond 3 are refused."""
    from geounet.export import export_onnx

    with pytest.raises(InvalidOptionError, match=match):
        export_onnx(rgb_model(tmp_path), tmp_path / "x.onnx", **{"target": "geodeep", **kw})
    with pytest.raises(InvalidOptionError, match=r"reads bands \[1, 2, 4\]; GeoDeep feeds"):
        export_onnx(rgb_model(tmp_path, bands=(1, 2, 4)), tmp_path / "y.onnx",
                    target="geodeep")
    assert not (tmp_path / "x.onnx").exists()


def test_cli_export_for_geodeep(tmp_path, runner, monkeypatch):
    """The CLI writes the GeoDeep variant and seg_small_segment."""
    import geounet.export as export_module
    from geounet.cli import cli

    model = rgb_model(tmp_path)
    monkeypatch.setattr(export_module, "as_loaded", lambda spec: model)
    result = runner.invoke(cli, ["export", "--onnx", str(tmp_path / "c.onnx"), "--for",
                                 "geodeep", "--seg-small-segment", "3", "--quiet"])
    assert result.exit_code == 0, result.output
    props = _props(tmp_path / "c.onnx")
    assert props["seg_small_segment"] == 3 and props["geounet"]["input_scaling"] == "geodeep"
