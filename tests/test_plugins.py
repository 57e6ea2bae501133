"""Entry-point plugins: hooks documented, the example package used from the CLI and the API,
and the ``rio geounet`` plugin."""

import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from builders import ROOT, random_scene
from geounet import hooks

EXAMPLE = ROOT / "examples" / "plugin_example"


def test_every_hookspec_is_documented():
    doc = (ROOT / "docs" / "plugins.md").read_text()
    specs = [n for n, f in inspect.getmembers(hooks.GeounetSpecs, inspect.isfunction)
             if n.startswith("geounet_")]
    assert len(specs) == 3
    for name in specs:
        params = list(inspect.signature(getattr(hooks.GeounetSpecs, name)).parameters)[1:]
        assert re.search(rf"^### {name}\({', '.join(params)}\)$", doc, re.M), name


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory):
    """The example plugin installed (no dependencies) into a folder put on PYTHONPATH."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--target", str(target), str(EXAMPLE)], check=True)
    return target


def run_py(code, plugin_path, cwd):
    env = {"PYTHONPATH": str(plugin_path), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=cwd)


def test_example_plugin_from_cli_and_api(tmp_path, plugin_path):
    scene = random_scene(tmp_path / "s.tif", 120, 100)
    code = f"""
import json, sys
import geopandas as gpd
import torch
from click.testing import CliRunner
from geounet.cli import cli
from geounet.models import ModelMetadata, architectures, build_model, save_model
from geounet.pipeline import predict_scene

archs = architectures()
assert archs["tinynet"].package == "geounet-plugin-example", archs
torch.manual_seed(0)
m = build_model("tinynet", 1, 1, width=4)
with torch.no_grad():  # a bias that makes every pixel a building: footprints for sure
    m.body[2].bias.fill_(5.0)
meta = ModelMetadata(name="tiny", architecture="tinynet", arch_args={{"width": 4}}, bands=[1],
                     band_names=["b"], band_mean=[500.0], band_std=[250.0],
                     classes=["background", "building"], tile_size_px=64, overlap_px=8,
                     pad_multiple=1)
save_model(m, meta, "tiny.safetensors")
r = CliRunner().invoke(cli, ["models"])
assert "tinynet" in r.output and "geounet-plugin-example" in r.output, r.output
r = CliRunner().invoke(cli, ["predict", "{scene}", "-o", "cli.gpkg", "--model", "tiny.safetensors", "-q"])
assert r.exit_code == 0, r.output
cli_gdf = gpd.read_file("cli.gpkg")
api = predict_scene("{scene}", "api.geojson", model="tiny.safetensors", keep_footprints=True)
print(json.dumps({{"cli_cols": list(cli_gdf.columns), "api_cols": list(api.footprints.columns),
                  "n_cli": len(cli_gdf), "n_api": len(api.footprints),
                  "compactness": float(cli_gdf.compactness.iloc[0])}}))
"""
    out = run_py(code, plugin_path, tmp_path)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    for cols in (res["cli_cols"], res["api_cols"]):
        assert {"perimeter_m", "compactness", "class_id", "area_m2", "score"} <= set(cols)
    assert res["n_cli"] == res["n_api"] == 1
    assert 0.7 < res["compactness"] <= 0.8  # a 60 x 50 m rectangle: 4*pi*3000/220^2 = 0.78


def test_broken_plugin_does_not_break_others(tmp_path, plugin_path):
    broken = tmp_path / "broken_site"
    dist = broken / "broken_plugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[geounet.models]\nbadnet = no_such_module:build\n[geounet]\nbad = no_such_module\n")
    code = """
from geounet.models import architectures, build_model
from geounet.errors import UnknownModelError
from geounet import hooks
archs = architectures()
assert "badnet" in archs and "tinynet" in archs
try:
    build_model("badnet", 1, 1)
except UnknownModelError as e:
    msg = str(e)
assert "badnet" in msg and "broken-plugin" in msg and "no_such_module" in msg, msg
build_model("tinynet", 1, 1)
assert hooks.has_implementations("geounet_postprocess_footprints", plugins_only=True)
assert hooks.plugin_manager().has_plugin("example")  # the example still loads
print("ok")
"""
    env_path = f"{plugin_path}:{broken}"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"}, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "failed to load" in out.stderr and "'bad'" in out.stderr


def test_plugin_vector_writer_hook(tmp_path, model_file):
    """A writer added through the hook is chosen by extension."""
    import geopandas as gpd

    from geounet.pipeline import predict_scene

    class CsvWriter:
        def __init__(self, path, crs):
            self.path, self.rows = path, []

        def write(self, gdf):
            self.rows.extend(gdf.geometry.to_wkt())

        def close(self):
            Path(self.path).write_text("\n".join(self.rows))

        def abort(self):
            pass

    class Plugin:
        @hooks.hookimpl
        def geounet_vector_writers(self):
            return {".wkt": CsvWriter}

    pm = hooks.plugin_manager()
    plugin = Plugin()
    pm.register(plugin)
    try:
        scene = random_scene(tmp_path / "s.tif", 100, 80)
        r = predict_scene(scene, tmp_path / "out.wkt", model=model_file, keep_footprints=True)
        lines = (tmp_path / "out.wkt").read_text().splitlines()
        assert len(lines) == len(r.footprints) and lines[0].startswith("POLYGON")
        assert gpd.GeoSeries.from_wkt(lines).area.sum() == pytest.approx(r.footprints.area.sum())
    finally:
        pm.unregister(plugin)


def test_rio_plugin_imports_only_click_and_runs(tmp_path, model_file):
    code = ("import sys; import geounet.cli.rio; "
            "print(sorted(m.split('.')[0] for m in sys.modules "
            "if m.split('.')[0] in ('torch', 'numpy', 'rasterio', 'geopandas', 'shapely')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    scene = random_scene(tmp_path / "s.tif", 100, 80)
    rio = Path(sys.executable).with_name("rio")
    r = subprocess.run([str(rio), "geounet", "predict", str(scene), "-o", str(tmp_path / "o.fgb"),
                        "--model", str(model_file), "-q"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([str(rio), "geounet", "predict", str(tmp_path / "missing.tif"), "-o",
                        str(tmp_path / "x.fgb"), "--model", str(model_file)],
                       capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.strip().startswith("Error: ")
    assert "Traceback" not in r.stderr


def test_cli_rio_api_and_plugin_give_the_same_footprints(tmp_path, plugin_path, runner):
    """The four ways in (CLI, rio plugin, Python API, with the example plugin installed)
    produce the same footprints on the real sample scene."""
    import geopandas as gpd
    import shapely

    from builders import SAMPLE_SCENE
    from geounet.cli import cli
    from geounet.pipeline import predict_scene

    def key(gdf):
        return sorted(shapely.normalize(g).wkb for g in gdf.to_crs(32616).geometry)

    r = runner.invoke(cli, ["predict", str(SAMPLE_SCENE), "-o", str(tmp_path / "cli.gpkg"), "-q"])
    assert r.exit_code == 0, r.output
    rio = Path(sys.executable).with_name("rio")
    out = subprocess.run([str(rio), "geounet", "predict", str(SAMPLE_SCENE), "-o",
                          str(tmp_path / "rio.gpkg"), "-q"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    api = predict_scene(SAMPLE_SCENE, None).footprints
    code = (f"from geounet.pipeline import predict_scene; "
            f"predict_scene({str(SAMPLE_SCENE)!r}, 'plugin.gpkg')")
    out = run_py(code, plugin_path, tmp_path)
    assert out.returncode == 0, out.stderr
    with_plugin = gpd.read_file(tmp_path / "plugin.gpkg")
    assert "compactness" in with_plugin.columns  # the plugin's hook ran
    ref = key(gpd.read_file(tmp_path / "cli.gpkg"))
    assert len(ref) > 10
    assert key(gpd.read_file(tmp_path / "rio.gpkg")) == ref
    assert key(api) == ref
    assert key(with_plugin) == ref
