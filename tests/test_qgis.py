"""The QGIS Processing integration (plugins/qgis/), run headless against a real QGIS.

Everything QGIS runs in subprocesses: ``qgis_process.bin`` for the script as a
user installs it (Scripts folder), and QGIS's own Python (``/usr/bin/python3``)
for the provider, cancellation and a non-file raster. geounet itself is the
interpreter running these tests (``sys.executable``).

Without QGIS the tests are skipped, unless ``GEOUNET_REQUIRE_QGIS=1`` (CI), which
makes them fail. Install QGIS with ``.ci/install-qgis``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pyogrio
import pytest
import rasterio

from qgis_helpers import (
    ALGORITHM,
    DISPLAY_NAME,
    GEOUNET_FIELDS,
    QGIS_PROCESS,
    SAMPLE_SCENE,
    cli_options,
    leftovers,
    model_parameters,
    qgis_env,
    qgis_installed,
    run_pyqgis_cases,
    run_qgis_process,
)

SAMPLE_CRS = "EPSG:32616"


@pytest.fixture(scope="module", autouse=True)
def _qgis_required():
    """Skip without QGIS, or fail when GEOUNET_REQUIRE_QGIS=1 says it must be there."""
    if not qgis_installed():
        reason = (f"QGIS is not installed ({QGIS_PROCESS} or PyQGIS for /usr/bin/python3 "
                  "missing); install it with .ci/install-qgis")
        if os.environ.get("GEOUNET_REQUIRE_QGIS") == "1":
            pytest.fail(f"GEOUNET_REQUIRE_QGIS=1 but {reason}", pytrace=False)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A module-wide scratch folder."""
    return tmp_path_factory.mktemp("qgis")


@pytest.fixture(scope="module")
def base_params(work):
    """Parameters every run shares: the model (bundled or tiny), the CPU device and 256 px
    tiles (the bundled model's default of 768 px cuts the sample into 4 tiles; progress and
    cancel need many)."""
    return {**model_parameters(work), "DEVICE": "cpu", "TILE_SIZE": 256}


@pytest.fixture(scope="module")
def env(work):
    """The headless QGIS environment, with the Scripts folder set to plugins/qgis/."""
    return qgis_env(work / "home")


@pytest.fixture(scope="module")
def reference(work, env, base_params):
    """``geounet predict`` on the sample scene: the footprints to compare QGIS's with."""
    out = work / "reference.gpkg"
    cmd = [sys.executable, "-m", "geounet", "predict", str(SAMPLE_SCENE), "-o", str(out),
           "--progress", "none", "-q", *cli_options(base_params)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    info = pyogrio.read_info(out)
    areas = pyogrio.read_dataframe(out, columns=["area_m2"], read_geometry=False)["area_m2"]
    assert info["features"] > 0, "the reference run found no footprint to compare with"
    return {"path": out, "count": int(info["features"]), "area": float(areas.sum())}


def _outdir(work, name):
    folder = work / name
    folder.mkdir()
    return folder


def _check_footprints(path, reference, layer=None):
    """Assert a vector file has the sample's CRS, geounet's fields and the reference's polygons."""
    info = pyogrio.read_info(path, layer=layer)
    assert info["crs"] == SAMPLE_CRS
    fields = dict(zip(info["fields"], info["dtypes"]))
    for name, kind in GEOUNET_FIELDS.items():
        assert name in fields, f"{name} missing from {sorted(fields)}"
        expected = {"int": ("int32", "int64"), "str": ("object",),
                    "float": ("float64", "float32")}[kind]
        assert fields[name] in expected, (name, fields[name])
    assert info["geometry_type"] in ("Polygon", "MultiPolygon")
    assert info["features"] == reference["count"]
    areas = pyogrio.read_dataframe(path, layer=layer, columns=["area_m2"],
                                   read_geometry=False)["area_m2"]
    assert float(areas.sum()) == pytest.approx(reference["area"], rel=1e-6)


# ------------------------------------------------------------------ qgis_process


def test_script_is_listed_with_its_parameters(env):
    """QGIS loads the script from the Scripts folder, with every parameter and output."""
    proc = subprocess.run([str(QGIS_PROCESS), "--json", "help", f"script:{ALGORITHM}"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    assert data["algorithm_details"]["name"] == DISPLAY_NAME
    params = data["parameters"]
    assert set(params) == {"INPUT", "MODEL", "BANDS", "TILE_SIZE", "OVERLAP", "THRESHOLD",
                           "MIN_AREA", "SIMPLIFY", "SIEVE", "FILL_HOLES", "SPLIT_TOUCHING",
                           "REGULARIZE", "TTA", "DEVICE", "RUNTIME", "RESAMPLE", "PYTHON",
                           "OUTPUT", "PROBABILITY", "CLASS_RASTER"}
    assert params["PYTHON"]["is_advanced"] is True
    assert params["MODEL"]["optional"] is True
    assert params["PROBABILITY"]["optional"] is True
    assert params["OUTPUT"]["is_destination"] is True
    assert set(data["outputs"]) == {"OUTPUT", "PROBABILITY", "CLASS_RASTER", "FOOTPRINT_COUNT"}


def _predict_count(env, scene, out, options):
    """Run ``geounet predict`` with ``options``; the number of polygons it wrote."""
    cmd = [sys.executable, "-m", "geounet", "predict", str(scene), "-o", str(out),
           "--progress", "none", "-q", "--device", "cpu", *options]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return pyogrio.read_info(out)["features"]


def test_qgis_process_land_cover_model_with_class_raster(work, env):
    """The bundled land-cover model by name: every class as polygons, a coloured class raster."""
    from builders import LANDSAT_SCENE

    out = _outdir(work, "qp_landcover")
    params = {"INPUT": LANDSAT_SCENE, "MODEL": "landcover-landsat7", "DEVICE": "cpu",
              "SIEVE": "5000", "PYTHON": sys.executable,
              "OUTPUT": out / "landcover.gpkg", "CLASS_RASTER": out / "classes.tif"}
    proc, data = run_qgis_process(params, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    expected = _predict_count(env, LANDSAT_SCENE, work / "lc_reference.gpkg",
                              ["--model", "landcover-landsat7", "--sieve", "5000"])
    assert data["results"]["FOOTPRINT_COUNT"] == expected > 0
    names = set(pyogrio.read_dataframe(out / "landcover.gpkg", read_geometry=False)["class_name"])
    assert names <= {"developed", "agriculture", "herbaceous", "shrubland", "forest", "water",
                     "sediment"} and len(names) >= 5
    with rasterio.open(out / "classes.tif") as ds, rasterio.open(LANDSAT_SCENE) as scene:
        assert ds.crs == scene.crs and ds.colormap(1)[0][:3] != (0, 0, 0)
        assert json.loads(ds.tags()["CLASS_NAMES"])[0] == "developed"
    assert leftovers(out) == ["classes.tif", "landcover.gpkg"]


def test_qgis_process_footprint_options_match_the_cli(work, env, base_params, reference):
    """Split, regularise, fill holes, TTA and the runtime reach geounet as the same CLI options."""
    out = _outdir(work, "qp_footprint_options")
    params = {"INPUT": SAMPLE_SCENE, **base_params, "PYTHON": sys.executable,
              "SPLIT_TOUCHING": "true", "REGULARIZE": "true", "FILL_HOLES": "4", "TTA": "1",
              "RUNTIME": "3", "OUTPUT": out / "footprints.gpkg"}
    proc, data = run_qgis_process(params, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    expected = _predict_count(env, SAMPLE_SCENE, work / "opt_reference.gpkg",
                              [*cli_options(base_params), "--split-touching", "--regularize",
                               "--fill-holes", "4.0", "--tta", "flips", "--runtime", "openvino"])
    assert data["results"]["FOOTPRINT_COUNT"] == expected

    def areas(path):
        return sorted(pyogrio.read_dataframe(path, columns=["area_m2"],
                                             read_geometry=False)["area_m2"])

    got = areas(out / "footprints.gpkg")
    assert got == pytest.approx(areas(work / "opt_reference.gpkg"), rel=1e-9)
    assert sum(got) != pytest.approx(reference["area"], rel=1e-6)  # the options did something


def test_qgis_process_resample_matches_the_cli(work, env, base_params):
    """RESAMPLE reaches geounet as --resample: on a 0.8 m copy, off differs from auto."""
    import numpy as np
    from rasterio.enums import Resampling

    copy = work / "atlanta_0.8m.tif"
    with rasterio.open(SAMPLE_SCENE) as src:
        t = src.transform * src.transform.scale(1.6, 1.6)
        profile = dict(src.profile, width=563, height=563, transform=t)
        data = src.read(out_shape=(1, 563, 563), resampling=Resampling.average)
    with rasterio.open(copy, "w", **profile) as dst:
        dst.write(data.astype(np.uint16))
    out = _outdir(work, "qp_resample")
    params = {"INPUT": copy, **base_params, "PYTHON": sys.executable, "RESAMPLE": "1",
              "OUTPUT": out / "footprints.gpkg"}
    proc, data = run_qgis_process(params, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    off = _predict_count(env, copy, work / "off.gpkg", [*cli_options(base_params),
                                                        "--resample", "off"])
    auto = _predict_count(env, copy, work / "auto.gpkg", cli_options(base_params))
    assert data["results"]["FOOTPRINT_COUNT"] == off != auto


def test_qgis_process_matches_geounet_predict(work, env, base_params, reference):
    """Footprints from qgis_process equal geounet predict's: CRS, attributes, count."""
    out = _outdir(work, "qp_run")
    params = {"INPUT": SAMPLE_SCENE, **base_params, "PYTHON": sys.executable,
              "OUTPUT": out / "footprints.gpkg", "PROBABILITY": out / "prob.tif"}
    proc, data = run_qgis_process(params, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = data["results"]
    assert results["OUTPUT"] == str(out / "footprints.gpkg")
    assert results["FOOTPRINT_COUNT"] == reference["count"]
    _check_footprints(out / "footprints.gpkg", reference, layer="footprints")
    with rasterio.open(results["PROBABILITY"]) as prob, rasterio.open(SAMPLE_SCENE) as scene:
        assert prob.crs == scene.crs
        assert (prob.width, prob.height) == (scene.width, scene.height)
        assert prob.transform.almost_equals(scene.transform)
    # Nothing else: no temporary or hidden staging file is left beside the outputs.
    assert leftovers(out) == ["footprints.gpkg", "prob.tif"]


def test_qgis_process_other_format_via_environment_variable(work, base_params, reference):
    """GEOUNET_PYTHON names the interpreter; a shapefile destination keeps the raster's CRS.

    QGIS's PYTHONPATH must not reach geounet's interpreter: here it holds a fake
    ``geounet`` package that fails on import.
    """
    out = _outdir(work, "qp_shp")
    poison = work / "poisoned_pythonpath" / "geounet"
    poison.mkdir(parents=True)
    (poison / "__init__.py").write_text(
        'raise RuntimeError("QGIS\'s PYTHONPATH leaked into geounet\'s interpreter")\n')
    env = qgis_env(work / "home_env", GEOUNET_PYTHON=sys.executable,
                   PYTHONPATH=str(poison.parent))
    params = {"INPUT": SAMPLE_SCENE, **base_params, "OUTPUT": out / "footprints.shp"}
    proc, data = run_qgis_process(params, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert data["results"]["FOOTPRINT_COUNT"] == reference["count"]
    _check_footprints(out / "footprints.shp", reference)
    assert not [name for name in leftovers(out) if name.startswith(".")]


@pytest.mark.parametrize("case", ["missing_python", "wrong_python", "no_geounet_anywhere",
                                  "missing_model", "non_file_raster"])
def test_qgis_process_failures(case, work, base_params):
    """Each failure: exit status 1, a one-line message saying what is wrong, no output."""
    out = _outdir(work, f"fail_{case}")
    extra_env = {}
    params = {"INPUT": SAMPLE_SCENE, **base_params, "PYTHON": sys.executable,
              "OUTPUT": out / "footprints.gpkg", "PROBABILITY": out / "prob.tif"}
    if case == "missing_python":
        params["PYTHON"] = str(work / "no-such-venv" / "bin" / "python")
        expected = "does not exist"
    elif case == "wrong_python":  # QGIS's own Python, given through the environment
        del params["PYTHON"]
        extra_env["GEOUNET_PYTHON"] = "/usr/bin/python3"
        expected = "cannot run geounet (No module named geounet)"
    elif case == "no_geounet_anywhere":
        del params["PYTHON"]
        extra_env["PATH"] = "/usr/bin:/bin"
        expected = "geounet was not found"
    elif case == "missing_model":
        params["MODEL"] = str(work / "no-such-model.safetensors")
        expected = "no-such-model.safetensors"
    else:
        params["INPUT"] = "wms://type=xyz&url=http://127.0.0.1:9/%7Bz%7D/%7Bx%7D/%7By%7D.png"
        expected = "is not file-based"
    env = qgis_env(work / f"home_{case}", **extra_env)
    proc, data = run_qgis_process(params, env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert data is None  # no results printed
    messages = [ln for ln in proc.stderr.splitlines() if "DeprecationWarning" not in ln]
    assert any(expected in ln for ln in messages), proc.stderr
    assert "Traceback" not in proc.stderr
    assert leftovers(out) == []
    if case == "missing_model":  # geounet's own one-line message, passed on unchanged
        cli = subprocess.run([sys.executable, "-m", "geounet", "predict", str(SAMPLE_SCENE),
                              "-o", str(work / "never.gpkg"), "--model", params["MODEL"]],
                             capture_output=True, text=True, timeout=120)
        assert cli.returncode == 1
        geounet_message = cli.stderr.strip().splitlines()[-1]
        assert geounet_message.startswith("Error: ")
        assert geounet_message[len("Error: "):] in messages


# ------------------------------------------------------------------- PyQGIS side


@pytest.fixture(scope="module")
def pyqgis(work, base_params):
    """Register the provider in a standalone PyQGIS app and run three cases there."""
    run_out = _outdir(work, "py_run")
    cancel_out = _outdir(work, "py_cancel")
    nonfile_out = _outdir(work, "py_nonfile")
    big = _big_scene(work / "big.tif")
    common = {**base_params, "MIN_AREA": 0.0}
    spec = {"cases": [
        {"name": "run", "kind": "run",
         "params": {"INPUT": str(SAMPLE_SCENE), **common,
                    "OUTPUT": str(run_out / "footprints.gpkg")}},
        {"name": "cancel", "kind": "cancel", "watch": str(cancel_out),
         "params": {"INPUT": str(big), **common, "OUTPUT": str(cancel_out / "footprints.gpkg"),
                    "PROBABILITY": str(cancel_out / "prob.tif")}},
        {"name": "nonfile", "kind": "nonfile",
         "params": {**common, "OUTPUT": str(nonfile_out / "footprints.gpkg")}},
    ]}
    env = qgis_env(work / "home_pyqgis", scripts_folder=None, GEOUNET_PYTHON=sys.executable)
    result = run_pyqgis_cases(spec, env, work)
    assert result["returncode"] == 0, result["stderr"]
    result["dirs"] = {"run": run_out, "cancel": cancel_out, "nonfile": nonfile_out}
    return result


def _big_scene(path):
    """The sample tiled 3 x 3 (2700 x 2700 px): a run long enough to cancel."""
    import numpy as np

    with rasterio.open(SAMPLE_SCENE) as src:
        data, profile = src.read(1), src.profile
    profile.update(width=data.shape[1] * 3, height=data.shape[0] * 3, tiled=True,
                   blockxsize=256, blockysize=256)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.tile(data, (3, 3)), 1)
    return path


def test_provider_registers_and_runs(pyqgis, reference):
    """GeounetProvider registers geounet:geounet_segment; a run reports progress to 100."""
    assert pyqgis["provider_id"] == "geounet"
    assert pyqgis["provider_is_geounet"] is True
    assert pyqgis["algorithms"] == [f"geounet:{ALGORITHM}"]
    assert pyqgis["unregistered"] is True
    run = pyqgis["cases"]["run"]
    assert run["ok"], run["errors"]
    assert run["results"]["FOOTPRINT_COUNT"] == reference["count"]
    _check_footprints(run["results"]["OUTPUT"], reference, layer="footprints")
    progress = run["progress"]
    assert progress == sorted(progress)
    assert progress[-1] == 100
    assert any(0 < p < 95 for p in progress), progress  # intermediate tile reports
    assert leftovers(pyqgis["dirs"]["run"]) == ["footprints.gpkg"]


def test_provider_cancel_stops_quickly_and_leaves_nothing(pyqgis):
    """Cancelled at its first progress report, a long run ends at once and leaves nothing."""
    cancel = pyqgis["cases"]["cancel"]
    assert not cancel["ok"]
    assert any("cancelled" in e for e in cancel["errors"]), cancel["errors"]
    tiles = [int(i.split()[2]) for i in cancel["infos"] if i.startswith("geounet: predicting")]
    assert tiles and tiles[0] >= 100, cancel["infos"]  # a run of many tiles...
    assert cancel["progress"] and max(cancel["progress"]) < 50
    assert cancel["seconds_after_cancel"] < 10, cancel  # ...stopped within seconds
    assert cancel["live_children"] == []
    assert leftovers(pyqgis["dirs"]["cancel"]) == []


def test_provider_rejects_non_file_raster(pyqgis):
    """A raster layer that is not a file (web tiles) gets a clear message and no output."""
    case = pyqgis["cases"]["nonfile"]
    assert case["layer_valid"] is True
    assert not case["ok"]
    assert any("'web tiles' is not file-based" in e and "GeoTIFF" in e
               for e in case["errors"]), case["errors"]
    assert leftovers(pyqgis["dirs"]["nonfile"]) == []
