"""geounet without torch: predict runs the bundled models' ONNX graphs; the rest says what to install.

Each check runs in a fresh process in which what the default install (``pip install
geounet``) lacks cannot be imported (``sys.modules[name] = None``): torch,
segmentation_models_pytorch and onnx (``geounet[torch]``), pyarrow (``geounet[arrow]``),
scipy, scikit-image and buildingregulariser (``geounet[footprints]``).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import rasterio

from builders import ROOT, SAMPLE_LABELS, SAMPLE_SCENE, random_scene

DEFAULT_INSTALL_LACKS = ("torch", "segmentation_models_pytorch", "onnx", "pyarrow", "scipy",
                         "skimage", "buildingregulariser")
"""What ``pip install geounet`` does not install (extras torch, arrow, footprints)."""

BLOCK = ("import sys\n"
         f"for name in {DEFAULT_INSTALL_LACKS!r}:\n"
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
    from geounet.models import bundled_models, read_metadata

    stamped = read_metadata(bundled_models()["buildings-atlanta"]).evaluation["building_f1"]
    assert json.loads(ev.stdout)["buildings"]["f1"] == pytest.approx(stamped, abs=1e-4)


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


@pytest.mark.parametrize("args,extra", [
    (["-o", "o.parquet"], "arrow"),
    (["-o", "o.gpkg", "--split-touching"], "footprints"),
    (["-o", "o.gpkg", "--regularize"], "footprints"),
], ids=["geoparquet", "split", "regularize"])
def test_what_the_default_install_lacks_says_which_extra(tmp_path, args, extra):
    out = cli(["predict", SAMPLE_SCENE, *args], tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert lines[-1].startswith("Error: ") and "Traceback" not in out.stderr
    assert f"pip install 'geounet[{extra}]'" in lines[-1]
    assert not list(tmp_path.iterdir())  # refused before any output was started


def test_default_install_writes_every_ogr_format_by_appending(tmp_path):
    for ext in ("gpkg", "fgb", "geojson"):
        out = cli(["predict", SAMPLE_SCENE, "-o", tmp_path / f"f.{ext}", "-q"], tmp_path)
        assert out.returncode == 0, out.stderr
    with_arrow = tmp_path / "arrow.gpkg"
    subprocess.run([sys.executable, "-m", "geounet", "predict", str(SAMPLE_SCENE), "-o",
                    str(with_arrow), "-q"], check=True, capture_output=True, cwd=tmp_path)
    import geopandas as gpd

    ref = gpd.read_file(with_arrow)
    for ext in ("gpkg", "fgb", "geojson"):
        got = gpd.read_file(tmp_path / f"f.{ext}").to_crs(ref.crs)
        assert len(got) == len(ref) > 20
        rel = 1e-4 if ext == "geojson" else 1e-9  # GeoJSON: 7 decimals of a degree, ~1 cm
        assert got.area.sum() == pytest.approx(ref.area.sum(), rel=rel)
