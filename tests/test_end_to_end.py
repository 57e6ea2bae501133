"""The README's promise on the real Atlanta chip with the bundled default model."""

import json
import re

import geopandas as gpd
import pytest

from builders import ROOT, SAMPLE_LABELS, SAMPLE_SCENE
from geounet.cli import cli
from geounet.models import bundled_models, read_metadata


def readme_figures():
    text = (ROOT / "README.md").read_text()
    m = re.search(r"^\| (east:[0-9.]+) \| ([0-9.]+) \| ([0-9.]+) \| ([0-9.]+) \| ([0-9.]+) \| "
                  r"([0-9.]+) \|", text, re.M)
    assert m, "README has no held-out figures row"
    region = m.group(1)
    pix_iou, pix_f1, b_p, b_r, b_f1 = (float(v) for v in m.groups()[1:])
    return region, pix_iou, pix_f1, b_p, b_r, b_f1


def test_default_model_reproduces_its_heldout_figures(tmp_path, runner):
    out = tmp_path / "atlanta.geojson"
    r = runner.invoke(cli, ["predict", str(SAMPLE_SCENE), "-o", str(out), "--mask-out",
                            str(tmp_path / "classes.tif"), "--device", "cpu", "-q"])
    assert r.exit_code == 0, r.output
    gdf = gpd.read_file(out)
    assert gdf.crs.to_epsg() == 4326 and len(gdf) > 10
    assert gdf.geometry.is_valid.all()
    # footprints land on the chip: lon/lat of Atlanta
    minx, miny, maxx, maxy = gdf.total_bounds
    assert -84.49 < minx < maxx < -84.47 and 33.63 < miny < maxy < 33.65

    region, pix_iou, pix_f1, b_p, b_r, b_f1 = readme_figures()
    r = runner.invoke(cli, ["evaluate", str(tmp_path / "classes.tif"), str(SAMPLE_LABELS),
                            "--region", region, "--json", "-"])
    assert r.exit_code == 0, r.output
    fresh = json.loads(r.output)
    meta = read_metadata(bundled_models()["buildings-atlanta"])
    ev = meta.evaluation
    assert ev["region"] == region == meta.training["config"]["val_region"]
    # a fresh run matches the README and the model file (same figures, 2 decimals of slack for
    # other CPUs' float rounding; the figures are identical on the machine that made them)
    for fresh_v, readme_v, meta_v in [
        (fresh["pixel"]["iou"], pix_iou, ev["pixel_iou"]),
        (fresh["pixel"]["f1"], pix_f1, ev["pixel_f1"]),
        (fresh["buildings"]["precision"], b_p, ev["building_precision"]),
        (fresh["buildings"]["recall"], b_r, ev["building_recall"]),
        (fresh["buildings"]["f1"], b_f1, ev["building_f1"]),
    ]:
        assert fresh_v == pytest.approx(readme_v, abs=0.01)
        assert meta_v == pytest.approx(readme_v, abs=5e-5)


def readme_landcover_figures():
    """The land-cover tables of the README: overall row and per-class rows."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### landcover-landsat7"):]
    section = section[: section.index("\n## ")]
    m = re.search(r"^\| (\d+) of (\d+) \| ([0-9.]+) \| ([0-9.]+) \|", section, re.M)
    assert m, "README has no land-cover overall row"
    rows = re.findall(r"^\| ([a-z]+) \| ([0-9.]+) \| ([0-9.]+) \| ([0-9.]+) \| ([0-9.]+) \| "
                      r"(\d+) \|", section, re.M)
    assert len(rows) >= 5, "README has no per-class land-cover rows"
    per_class = {r[0]: [float(v) for v in r[1:5]] + [int(r[5])] for r in rows}
    return int(m.group(1)), float(m.group(3)), float(m.group(4)), per_class


def test_landcover_model_reproduces_its_heldout_figures(tmp_path, runner):
    from builders import LANDSAT_LABELS, LANDSAT_SCENE

    out = tmp_path / "landcover.gpkg"
    r = runner.invoke(cli, ["predict", str(LANDSAT_SCENE), "-o", str(out), "--model",
                            "landcover-landsat7", "--mask-out", str(tmp_path / "lc.tif"),
                            "--device", "cpu", "-q", "--min-area", "5000"])
    assert r.exit_code == 0, r.output
    gdf = gpd.read_file(out)
    import pyproj
    import rasterio

    with rasterio.open(LANDSAT_SCENE) as ds:  # NAD83 / North Carolina, written without a code
        assert pyproj.CRS.from_wkt(ds.crs.to_wkt()) == gdf.crs
    assert gdf.geometry.is_valid.all()
    assert (gdf.area_m2 >= 5000).all() and set(gdf.class_name) >= {"forest", "developed"}
    n_held, acc, miou, per_class = readme_landcover_figures()
    r = runner.invoke(cli, ["evaluate", str(tmp_path / "lc.tif"), str(LANDSAT_LABELS),
                            "--held-out-of", "landcover-landsat7", "--json", "-"])
    assert r.exit_code == 0, r.output
    fresh = json.loads(r.output)["classes"]
    meta = read_metadata(bundled_models()["landcover-landsat7"])
    ev = meta.evaluation
    assert fresh["polygons"] == n_held == len(meta.training["held_out_rows"]) == ev["polygons"]
    assert fresh["overall_accuracy"] == pytest.approx(acc, abs=0.01)
    assert fresh["mean_iou"] == pytest.approx(miou, abs=0.01)
    assert ev["overall_accuracy"] == pytest.approx(acc, abs=5e-5)
    assert ev["mean_iou"] == pytest.approx(miou, abs=5e-5)
    for name, (iou, prec, rec, f1, px) in per_class.items():
        got = fresh["per_class"][name]
        assert got["support_px"] == px == ev["per_class"][name]["support_px"]
        for key, readme_v in zip(("iou", "precision", "recall", "f1"), (iou, prec, rec, f1)):
            assert got[key] == pytest.approx(readme_v, abs=0.01), (name, key)
            assert ev["per_class"][name][key] == pytest.approx(readme_v, abs=5e-5), (name, key)


def test_landcover_minimum_mapping_unit_figures(tmp_path, runner):
    """The README's --sieve table: polygon counts and held-out figures from fresh runs."""
    from builders import LANDSAT_LABELS, LANDSAT_SCENE

    text = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| (none|`--sieve (\d+)`) \| (\d+) \| ([0-9.]+) \| ([0-9.]+) \|",
                      text, re.M)
    assert len(rows) == 3, "README has no minimum mapping unit table"
    for label, value, n_polys, acc, miou in rows:
        sieve = value or "0"
        classes = tmp_path / f"lc{sieve}.tif"
        out = tmp_path / f"{sieve}.gpkg"
        r = runner.invoke(cli, ["predict", str(LANDSAT_SCENE), "-o", str(out),
                                "--model", "landcover-landsat7", "--mask-out", str(classes),
                                "--sieve", sieve, "--device", "cpu", "-q"])
        assert r.exit_code == 0, r.output
        # counts are exact on the machine that made them; 2 % of slack for other CPUs
        assert len(gpd.read_file(out)) == pytest.approx(int(n_polys), rel=0.02), label
        r = runner.invoke(cli, ["evaluate", str(classes), str(LANDSAT_LABELS), "--held-out-of",
                                "landcover-landsat7", "--json", "-"])
        fresh = json.loads(r.output)["classes"]
        assert fresh["overall_accuracy"] == pytest.approx(float(acc), abs=0.01), label
        assert fresh["mean_iou"] == pytest.approx(float(miou), abs=0.01), label
