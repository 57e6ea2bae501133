"""The CLI end to end on small generated scenes, and every error case."""

import json

import numpy as np
import pytest
import rasterio

from builders import random_scene, tiny_model, write_geotiff
from geounet.cli import cli


def run(runner, *args):
    return runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)


def assert_clean_error(result, *needles):
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = [ln for ln in result.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for n in needles:
        assert n in lines[0], lines[0]


def test_predict_writes_all_outputs(tmp_path, runner, model_file):
    data = np.random.default_rng(3).integers(100, 1000, (1, 150, 230)).astype("uint16")
    data[0, :40, :60] = 0  # nodata corner
    scene = write_geotiff(tmp_path / "s.tif", data, nodata=0)
    out = tmp_path / "fp.gpkg"
    r = run(runner, "predict", scene, "-o", out, "--model", model_file, "--prob-out",
            tmp_path / "p.tif", "--mask-out", tmp_path / "m.tif", "--threshold", "0.45", "-q")
    assert r.exit_code == 0, r.output
    assert r.output == ""  # --quiet
    with rasterio.open(scene) as s, rasterio.open(tmp_path / "m.tif") as m, \
            rasterio.open(tmp_path / "p.tif") as p:
        for ds in (m, p):
            assert ds.crs == s.crs and ds.transform == s.transform and ds.shape == s.shape
        cls = m.read(1)
        assert m.nodata == 255 and np.all(cls[:40, :60] == 255) and np.all(cls[40:] != 255)
        prob = p.read(1)
        assert p.dtypes[0] == "uint8" and np.all(p.read_masks(1)[:40, :60] == 0)
        assert np.array_equal(cls[40:] == 1, prob[40:] >= np.ceil(0.45 * 255 - 0.5))
    import geopandas as gpd

    gdf = gpd.read_file(out)
    assert gdf.crs.to_epsg() == 32616
    assert set(gdf.columns) >= {"class_id", "class_name", "area_m2", "score"}
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".")]  # no temp files left


def test_predict_multiclass_same_path(tmp_path, runner):
    model = tiny_model(tmp_path / "mc.safetensors", bands=(2, 1),
                       classes=("background", "water", "forest", "urban"))
    scene = random_scene(tmp_path / "s.tif", 120, 90, count=3)
    out = tmp_path / "lc.geojson"
    r = run(runner, "predict", scene, "-o", out, "--model", model, "--tile-size", "50",
            "--overlap", "10", "--prob-out", tmp_path / "p.tif", "--prob-dtype", "float32",
            "--mask-out", tmp_path / "m.tif", "--progress", "none")
    assert r.exit_code == 0, r.output
    with rasterio.open(tmp_path / "p.tif") as p, rasterio.open(tmp_path / "m.tif") as m:
        probs = p.read()
        assert probs.shape == (4, 90, 120) and p.dtypes[0] == "float32"
        np.testing.assert_allclose(probs.sum(0), 1, atol=1e-5)  # softmax
        assert np.array_equal(m.read(1), probs.argmax(0))
    doc = json.loads(out.read_text())
    names = {f["properties"]["class_name"] for f in doc["features"]}
    assert names and names <= {"water", "forest", "urban"}


def test_predict_progress_json(tmp_path, runner, model_file, scene):
    r = run(runner, "predict", scene, "-o", tmp_path / "o.fgb", "--model", model_file,
            "--progress", "json")
    assert r.exit_code == 0
    events = [json.loads(ln) for ln in r.stderr.splitlines() if ln.startswith("{")]
    assert {e["stage"] for e in events} == {"predict"}
    dones = [e["done"] for e in events]
    assert dones == sorted(set(dones))  # increasing, each report once
    last = [e for e in events if e["stage"] == "predict"][-1]
    assert last["done"] == last["total"] > 0


def test_models_lists_architectures_and_bundled(runner):
    r = run(runner, "models")
    assert r.exit_code == 0
    assert "unet" in r.output and "smp_unet" in r.output and "buildings-atlanta (default)" in r.output
    assert "landcover-landsat7:" in r.output and "overall_accuracy" in r.output


def test_help_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys; from geounet.cli import cli; from click.testing import CliRunner; "
            "assert CliRunner().invoke(cli, ['--help']).exit_code == 0; "
            "assert CliRunner().invoke(cli, ['predict', '--help']).exit_code == 0; "
            "print(sorted(m for m in ('torch', 'segmentation_models_pytorch', 'geopandas', "
            "'onnxruntime', 'distributed') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- errors: one line, non-zero exit, nothing left behind ---------------------------------

def _listing(folder):
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def work(tmp_path, model_file):
    scene = random_scene(tmp_path / "s.tif", 100, 80)
    return tmp_path, scene, model_file


def test_error_missing_input(work, runner):
    tmp, _, model = work
    r = run(runner, "predict", tmp / "nope.tif", "-o", tmp / "o.geojson", "--model", model)
    assert_clean_error(r, "nope.tif", "does not exist")


def test_error_not_a_raster(work, runner):
    tmp, _, model = work
    (tmp / "text.tif").write_text("hello")
    r = run(runner, "predict", tmp / "text.tif", "-o", tmp / "o.geojson", "--model", model)
    assert_clean_error(r, "text.tif", "not a raster")
    assert not (tmp / "o.geojson").exists()


def test_error_no_crs(work, runner):
    tmp, _, model = work
    p = write_geotiff(tmp / "nocrs.tif", np.ones((20, 20), np.uint16), crs=None)
    r = run(runner, "predict", p, "-o", tmp / "o.geojson", "--model", model)
    assert_clean_error(r, "no CRS", "gdal_edit.py -a_srs")


def test_error_band_out_of_range(work, runner):
    tmp, scene, model = work
    r = run(runner, "predict", scene, "-o", tmp / "o.geojson", "--model", model, "--bands", "4")
    assert_clean_error(r, "band 4 is out of range", "1..1")


def test_error_band_count_mismatch(work, runner):
    tmp, _, model = work
    three = random_scene(tmp / "rgb.tif", 50, 50, count=3)
    r = run(runner, "predict", three, "-o", tmp / "o.geojson", "--model", model, "--bands",
            "1,2,3")
    assert_clean_error(r, "3 band(s) selected", "expects 1")
    m3 = tiny_model(tmp / "m3.safetensors", bands=(1, 2, 3))
    r = run(runner, "predict", tmp / "s.tif", "-o", tmp / "o.geojson", "--model", m3)
    assert_clean_error(r, "has 1 band(s)", "expects 3")


def test_error_all_nodata(work, runner):
    tmp, _, model = work
    p = write_geotiff(tmp / "empty.tif", np.zeros((70, 90), np.uint16), nodata=0)
    before = _listing(tmp)
    r = run(runner, "predict", p, "-o", tmp / "o.geojson", "--model", model, "--mask-out",
            tmp / "m.tif", "-q")
    assert_clean_error(r, "nodata")
    assert _listing(tmp) == before  # neither the vector nor the raster, nor temp files


@pytest.mark.parametrize("args,needle", [
    (["--tile-size", "64", "--overlap", "64"], "must be smaller than the tile size"),
    (["--tile-size", "8"], "too small"),
    (["--overlap", "-3"], "negative"),
    (["--batch-size", "0"], "batch size 0"),
])
def test_error_bad_tiling(work, runner, args, needle):
    tmp, scene, model = work
    r = run(runner, "predict", scene, "-o", tmp / "o.geojson", "--model", model, *args)
    assert_clean_error(r, needle)


def test_error_output_folder_missing(work, runner):
    tmp, scene, model = work
    r = run(runner, "predict", scene, "-o", tmp / "no" / "o.geojson", "--model", model)
    assert_clean_error(r, "does not exist")


def test_error_output_exists_and_overwrite(work, runner):
    tmp, scene, model = work
    (tmp / "o.geojson").write_text("keep me")
    r = run(runner, "predict", scene, "-o", tmp / "o.geojson", "--model", model)
    assert_clean_error(r, "already exists", "--overwrite")
    assert (tmp / "o.geojson").read_text() == "keep me"
    r = run(runner, "predict", scene, "-o", tmp / "o.geojson", "--model", model, "--overwrite",
            "-q")
    assert r.exit_code == 0 and json.loads((tmp / "o.geojson").read_text())["type"]


def test_error_corrupt_and_unknown_model(work, runner):
    tmp, scene, _ = work
    bad = tmp / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    r = run(runner, "predict", scene, "-o", tmp / "o.geojson", "--model", bad)
    assert_clean_error(r, "bad.safetensors", "corrupt")
    r = run(runner, "predict", scene, "-o", tmp / "o.geojson", "--model", "nonexistent-model")
    assert_clean_error(r, "nonexistent-model", "buildings-atlanta")
    r = run(runner, "predict", scene, "-o", tmp / "o.geojson", "--model", tmp / "x.safetensors")
    assert_clean_error(r, "does not exist")


def test_error_unsupported_extension_and_device(work, runner):
    tmp, scene, model = work
    r = run(runner, "predict", scene, "-o", tmp / "o.shp", "--model", model)
    assert_clean_error(r, ".shp", ".geojson")
    r = run(runner, "predict", scene, "-o", tmp / "o.geojson", "--model", model, "--device",
            "tpu")
    assert_clean_error(r, "tpu", "cpu")


def test_error_cuda_missing(work, runner):
    import torch

    if torch.cuda.is_available():  # the check below is about machines without CUDA
        r = run(runner, "predict", work[1], "-o", work[0] / "o.geojson", "--model", work[2],
                "--device", f"cuda:{torch.cuda.device_count()}")
        assert_clean_error(r, "does not exist")
    else:
        r = run(runner, "predict", work[1], "-o", work[0] / "o.geojson", "--model", work[2],
                "--device", "cuda")
        assert_clean_error(r, "CUDA is not available", "--device cpu")


def test_exit_status_and_verbose_traceback_in_a_real_process(work):
    import subprocess
    import sys

    tmp, _, model = work
    base = [sys.executable, "-m", "geounet", "predict", str(tmp / "nope.tif"), "-o",
            str(tmp / "o.geojson"), "--model", str(model)]
    quiet = subprocess.run(base, capture_output=True, text=True)
    assert quiet.returncode == 1 and "Traceback" not in quiet.stderr
    assert quiet.stderr.strip().splitlines() == [
        f"Error: scene '{tmp / 'nope.tif'}' does not exist; check the path"]
    loud = subprocess.run(base + ["-v"], capture_output=True, text=True)
    assert loud.returncode == 1 and "Traceback" in loud.stderr


def test_many_scenes_into_a_folder_with_one_model_load(tmp_path, runner, model_file, monkeypatch):
    import geounet.models.modelfile as mf

    for i in range(3):
        random_scene(tmp_path / f"tile_{i}.tif", 90 + 10 * i, 70, seed=i)
    (tmp_path / "notes.txt").write_text("not a scene")
    loads = []
    real = mf.load_model
    monkeypatch.setattr(mf, "load_model", lambda spec=None, lazy=False: loads.append(spec) or real(spec, lazy))
    out = tmp_path / "out"
    r = run(runner, "predict", str(tmp_path / "tile_*.tif"), "-o", f"{out}/", "--model", model_file,
            "--format", "gpkg", "--mask-out", f"{tmp_path / 'masks'}/", "--cog", "-q")
    assert r.exit_code == 0, r.output
    assert len(loads) == 1  # the model is loaded once for all scenes
    assert sorted(p.name for p in out.iterdir()) == [f"tile_{i}.gpkg" for i in range(3)]
    masks = sorted((tmp_path / "masks").iterdir())
    assert [p.name for p in masks] == [f"tile_{i}_classes.tif" for i in range(3)]
    with rasterio.open(masks[2]) as ds:
        assert ds.width == 110 and ds.profile["tiled"]
    # a folder as SCENE works too
    r = run(runner, "predict", tmp_path, "-o", tmp_path / "out", "--model", model_file,
            "--overwrite", "-q")
    assert r.exit_code == 0, r.output
    assert len(list(out.glob("*.geojson"))) == 3


def test_rasters_have_internal_overviews(tmp_path, runner, model_file):
    scene = random_scene(tmp_path / "s.tif", 600, 300)
    r = run(runner, "predict", scene, "-o", tmp_path / "o.fgb", "--model", model_file,
            "--mask-out", tmp_path / "m.tif", "--prob-out", tmp_path / "p.tif", "-q")
    assert r.exit_code == 0, r.output
    with rasterio.open(tmp_path / "m.tif") as m, rasterio.open(tmp_path / "p.tif") as p:
        assert m.overviews(1) == [2, 4] and p.overviews(1) == [2, 4]
    r = run(runner, "predict", scene, "-o", tmp_path / "o2.fgb", "--model", model_file,
            "--mask-out", tmp_path / "c.tif", "--cog", "-q")
    with rasterio.open(tmp_path / "c.tif") as c, rasterio.open(tmp_path / "m.tif") as m:
        assert c.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert np.array_equal(c.read(1), m.read(1))
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".")]


def test_sigterm_removes_partial_outputs(tmp_path, model_file):
    """A run killed with SIGTERM (as the QGIS script cancels) leaves no file behind."""
    import signal
    import subprocess
    import sys
    import time

    scene = random_scene(tmp_path / "big.tif", 1500, 1500)
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = subprocess.Popen(
        [sys.executable, "-m", "geounet", "predict", str(scene), "-o", str(tmp_path / "o.gpkg"),
         "--model", str(model_file), "--mask-out", str(tmp_path / "m.tif"), "--tile-size", "64",
         "--overlap", "8", "--batch-size", "1", "--progress", "json"],
        stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:  # wait for the first progress report past 0
        if line.startswith("{") and '"done": 0' not in line:
            break
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    assert proc.returncode != 0
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_train_and_evaluate_sparse_labels_from_the_cli(tmp_path, runner):
    """--classes, --unlabelled ignore and --val-polygons, then evaluate --held-out-of."""
    import json

    from builders import sparse_landcover

    scene, labels = sparse_landcover(tmp_path)
    model = tmp_path / "lc.safetensors"
    r = runner.invoke(cli, ["train", str(scene), str(labels), "-o", str(model),
                            "--label-column", "code", "--classes", "1=water,2=field,3=town",
                            "--unlabelled", "ignore", "--val-polygons", "0.34",
                            "--class-weighting", "balanced", "--epochs", "2",
                            "--steps-per-epoch", "6", "--batch-size", "4", "--tile-size", "64",
                            "--base-channels", "8", "--depth", "2", "--keep", "last",
                            "--device", "cpu", "-q"])
    assert r.exit_code == 0, r.output
    from geounet.models import read_metadata

    meta = read_metadata(model)
    assert meta.training["config"]["val_region"] is None  # --val-polygons: no region default
    assert meta.training["config"]["class_map"] == {"1": "water", "2": "field", "3": "town"}
    classes = tmp_path / "classes.tif"
    r = runner.invoke(cli, ["predict", str(scene), "-o", str(tmp_path / "pred.gpkg"), "--model",
                            str(model), "--mask-out", str(classes), "-q"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["evaluate", str(classes), str(labels), "--held-out-of", str(model),
                            "--json", "-"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)["classes"]
    assert res["polygons"] == 3 and res["classes"] == ["water", "field", "town"]
    assert sum(map(sum, res["confusion"])) == res["pixels"] > 0
    r = runner.invoke(cli, ["evaluate", str(classes), str(labels), "--label-column", "code",
                            "--classes", "1=water,2=field,3=town"])
    assert r.exit_code == 0 and "confusion matrix" in r.output and "overall accuracy" in r.output
    # bad --classes and a model without held-out polygons: one line, exit status != 0
    r = runner.invoke(cli, ["train", str(scene), str(labels), "-o", str(tmp_path / "x.st"),
                            "--label-column", "code", "--classes", "1=,2=field"])
    assert r.exit_code == 2 and "VALUE=NAME" in r.output
    r = runner.invoke(cli, ["evaluate", str(classes), str(labels), "--held-out-of",
                            "buildings-atlanta"])
    assert r.exit_code == 1 and "--region east:0.333" in r.output
    assert "Traceback" not in r.output


def test_evaluate_and_predict_refuse_bad_values_in_one_line(tmp_path, runner):
    from builders import LANDSAT_LABELS, LANDSAT_SCENE, SAMPLE_LABELS

    classes = tmp_path / "c.tif"
    r = runner.invoke(cli, ["predict", str(LANDSAT_SCENE), "-o", str(tmp_path / "p.gpkg"),
                            "--model", "landcover-landsat7", "--mask-out", str(classes), "-q"])
    assert r.exit_code == 0, r.output
    cases = [
        (["evaluate", str(classes), str(LANDSAT_LABELS), "--label-column", "label",
          "--rows", "1,x"], "--rows"),
        (["evaluate", str(classes), str(SAMPLE_LABELS), "--held-out-of",
          "landcover-landsat7"], "is not the label file"),
        (["evaluate", str(classes), str(LANDSAT_LABELS), "--held-out-of",
          "landcover-landsat7", "--rows", "1"], "not both"),
        (["evaluate", str(classes), str(LANDSAT_LABELS), "--label-column", "label",
          "--rows", "0,1,2,3", "--raster-classes", "developed,agriculture"],
         "holds class id"),
        (["predict", str(LANDSAT_SCENE), "-o", str(tmp_path / "x.gpkg"), "--sieve", "inf"],
         "sieve"),
        (["predict", str(LANDSAT_SCENE), "-o", str(tmp_path / "x.gpkg"), "--fill-holes",
          "nan"], "fill holes"),
        (["predict", str(LANDSAT_SCENE), "-o", str(tmp_path / "x.gpkg"), "--split-touching",
          "--split-h", "0"], "--split-h"),
    ]
    for args, needle in cases:
        r = runner.invoke(cli, args)
        assert r.exit_code != 0 and needle in r.output, (args, r.output)
        assert "Traceback" not in r.output and len(r.output.strip().splitlines()) <= 4
    assert not (tmp_path / "x.gpkg").exists()


def test_sieve_larger_than_a_small_scene_works(tmp_path, runner, model_file):
    scene = random_scene(tmp_path / "small.tif", 60, 40)
    r = runner.invoke(cli, ["predict", str(scene), "-o", str(tmp_path / "s.gpkg"), "--model",
                            str(model_file), "--sieve", "10000", "-q"])
    assert r.exit_code == 0, r.output
