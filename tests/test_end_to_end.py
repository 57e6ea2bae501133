"""The README's promise on the real Atlanta chip with the bundled default model."""

import json
import re

import geopandas as gpd
import pytest

from conftest import ROOT, SAMPLE_LABELS, SAMPLE_SCENE
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
