"""geounet without torch: predict runs the bundled models' ONNX graphs; the rest says what to install.

Each check runs in a fresh process in which ``torch``, ``segmentation_models_pytorch``
and ``onnx`` cannot be imported (``sys.modules[name] = None``), as in the default
install (``pip install geounet``), which carries onnxruntime and not torch.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import rasterio

from builders import ROOT, SAMPLE_LABELS, SAMPLE_SCENE, random_scene

BLOCK = ("import sys\n"
         "for name in ('torch', 'segmentation_models_pytorch', 'onnx'):\n"
         "    sys.modules[name] = None\n")


def cli(args, tmp_path):
    code = BLOCK + (f"sys.argv = ['geounet'] + {list(map(str, args))!r}\n"
                    "from geounet.cli.main import main\nmain()\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path)


def test_the_readme_command_runs_without_torch(tmp_path):
    out = cli(["predict", SAMPLE_SCENE, "-o", tmp_path / "f.gpkg", "--mask-out",
               tmp_path / "m.tif", "-v", "-q"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert "torch is not installed" in out.stderr and "runtime onnxruntime" in out.stderr
    golden = ROOT / "tests" / "data" / "golden" / "buildings_classes.tif"
    with rasterio.open(tmp_path / "m.tif") as a, rasterio.open(golden) as b:
        agree = np.mean(a.read(1) == b.read(1))
    assert agree >= 0.9999
    ev = cli(["evaluate", tmp_path / "m.tif", SAMPLE_LABELS, "--region", "east:0.333",
              "--json", "-"], tmp_path)
    assert ev.returncode == 0, ev.stderr
    assert json.loads(ev.stdout)["buildings"]["f1"] == pytest.approx(0.5455, abs=1e-4)


@pytest.mark.parametrize("args", [
    ["train", "{scene}", "{labels}", "-o", "m.safetensors"],
    ["export", "--onnx", "x.onnx"],
    ["predict", "{scene}", "-o", "o.gpkg", "--runtime", "torch"],
    ["predict", "{scene}", "-o", "o.gpkg", "--model", "{tiny}"],
], ids=["train", "export", "runtime-torch", "model-without-graph"])
def test_what_needs_torch_says_so_in_one_line(tmp_path, model_file, args):
    scene = random_scene(tmp_path / "s.tif", 80, 60)
    labels = tmp_path / "l.geojson"
    labels.write_text('{"type": "FeatureCollection", "features": []}')
    fill = {"{scene}": str(scene), "{labels}": str(SAMPLE_LABELS), "{tiny}": str(model_file)}
    out = cli([fill.get(a, a) for a in args], tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert lines[-1].startswith("Error: ") and "Traceback" not in out.stderr
    assert "pip install 'geounet[torch]'" in lines[-1]
