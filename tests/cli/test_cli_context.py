"""``geounet measure-context``: measure a model's context and store it in a copy."""

import re

from builders import SAMPLE_SCENE
from click.testing import CliRunner

from geounet.cli import cli
from geounet.models import bundled_models, read_metadata


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_measure_context_prints_and_stores_it(tmp_path):
    out = tmp_path / "m.safetensors"
    r = run("measure-context", "buildings-atlanta", SAMPLE_SCENE, "--regions", 1,
            "--runtime", "torch", "-o", out)
    assert r.exit_code == 0, r.output
    context = int(re.search(r"context (\d+) px", r.output).group(1))
    meta = read_metadata(out)
    assert meta.context_px == context and meta.context["scene"] == SAMPLE_SCENE.name
    assert meta.context["regions"] == 1
    assert len(meta.context["profile"]) == meta.context["measurable_px"]
    tile, overlap = re.search(r"--tile-size (\d+) --overlap (\d+)", r.output).groups()
    assert (meta.tile_size_px, meta.overlap_px) == (int(tile), int(overlap))
    assert overlap and int(overlap) >= 2 * context
    # the weights are those of the source
    src = read_metadata(bundled_models()["buildings-atlanta"])
    assert meta.bands == src.bands and meta.band_mean == src.band_mean


def test_measure_context_of_a_fixed_graph_keeps_its_tile_size(tmp_path):
    graph = bundled_models()["buildings-atlanta"].with_suffix(".onnx")
    out = tmp_path / "m.onnx"
    r = run("measure-context", graph, SAMPLE_SCENE, "--regions", 1, "-o", out)
    assert r.exit_code == 0, r.output
    meta = read_metadata(out)
    assert meta.context_px is not None and meta.tile_size_px == read_metadata(graph).tile_size_px


def test_measure_context_refuses_another_suffix(tmp_path):
    r = run("measure-context", "buildings-atlanta", SAMPLE_SCENE, "--regions", 1,
            "-o", tmp_path / "m.onnx")
    lines = [ln for ln in r.output.strip().splitlines() if ln.startswith("Error: ")]
    assert r.exit_code != 0 and len(lines) == 1 and ".safetensors" in lines[0]
    assert not (tmp_path / "m.onnx").exists()
