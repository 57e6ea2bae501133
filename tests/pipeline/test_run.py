import subprocess
import sys

import numpy as np
import pytest
import rasterio

from builders import random_scene
from geounet.config import OutputConfig, TilingConfig
from geounet.errors import CancelledError
from geounet.pipeline import predict_scene


class CancelAfterFirst:
    def __init__(self):
        self.calls = []

    def __call__(self, done, total, stage):
        self.calls.append((done, total, stage))

    def cancelled(self):
        return len(self.calls) >= 1


def test_cancel_leaves_nothing(tmp_path, model_file):
    scene = random_scene(tmp_path / "s.tif", 400, 300)
    before = sorted(tmp_path.iterdir())
    prog = CancelAfterFirst()
    with pytest.raises(CancelledError):
        predict_scene(scene, tmp_path / "o.geojson", model=model_file, prob_out=tmp_path / "p.tif",
                      mask_out=tmp_path / "m.tif", progress=prog)
    assert sorted(tmp_path.iterdir()) == before
    assert prog.calls[0][:1] == (0,) and prog.calls[0][2] == "predict"


def test_api_returns_frame_and_paths(tmp_path, model_file):
    scene = random_scene(tmp_path / "s.tif", 130, 70)
    r = predict_scene(scene, None, model=model_file, mask_out=tmp_path / "m.tif",
                      tiling=TilingConfig(48, 8))
    assert r.output is None and r.mask_out == (tmp_path / "m.tif").absolute()
    assert r.tiles == r.tiles_predicted == 4 * 2  # columns 0, 40, 80, 82; rows 0, 22
    assert r.footprints.crs.to_epsg() == 32616
    with rasterio.open(r.mask_out) as ds:
        cls = ds.read(1)
    # polygons are exactly the foreground pixels of the class raster
    area_px = (cls == 1).sum() * 0.25
    assert r.footprints.area.sum() == pytest.approx(area_px)


def test_tile_size_not_a_multiple_is_padded_not_refused(tmp_path, model_file):
    scene = random_scene(tmp_path / "s.tif", 90, 90)
    r = predict_scene(scene, None, model=model_file, tiling=TilingConfig(37, 5),
                      outputs=OutputConfig())
    assert r.tiles == 9


def test_tiling_changes_little_inside_the_scene(tmp_path, model_file):
    """Different tile layouts agree: blending hides where tiles meet."""
    scene = random_scene(tmp_path / "s.tif", 200, 200, seed=5)
    a = predict_scene(scene, None, model=model_file, prob_out=tmp_path / "a.tif",
                      tiling=TilingConfig(64, 24), outputs=OutputConfig(prob_dtype="float32"))
    b = predict_scene(scene, None, model=model_file, prob_out=tmp_path / "b.tif",
                      tiling=TilingConfig(200, 0), outputs=OutputConfig(prob_dtype="float32"))
    with rasterio.open(a.prob_out) as da, rasterio.open(b.prob_out) as db:
        pa, pb = da.read(1), db.read(1)
    # the tiny model's receptive field is ~20 px; with 24 px overlap the blend of tiles is
    # within a few percent of the single whole-scene tile everywhere
    assert np.abs(pa - pb).max() < 0.05


def test_import_geounet_does_not_import_torch():
    code = ("import sys, geounet, geounet.models, geounet.cli; "
            "print([m for m in ('torch', 'segmentation_models_pytorch') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_land_cover_model_polygonises_every_class_with_colours_and_areas(tmp_path):
    import json

    import rasterio

    from builders import random_scene, tiny_model

    model = tiny_model(tmp_path / "lc.safetensors", classes=("water", "forest", "town"),
                       background_class=None, seed=3)
    scene = random_scene(tmp_path / "s.tif", 160, 96)
    r = predict_scene(scene, tmp_path / "lc.gpkg", model=model, mask_out=tmp_path / "c.tif",
                      keep_footprints=True, keep_arrays=True)
    gdf = r.footprints
    # every valid pixel is in some polygon: no class is treated as background
    assert gdf.area.sum() == pytest.approx(160 * 96 * 0.25)
    assert set(gdf["class_name"]) <= {"water", "forest", "town"}
    assert set(np.unique(r.classes)) == set(gdf["class_id"])
    for name, area in r.class_areas_m2.items():
        assert area == pytest.approx(gdf.loc[gdf["class_name"] == name, "area_m2"].sum())
    with rasterio.open(r.mask_out) as ds:
        assert json.loads(ds.tags()["CLASS_NAMES"]) == ["water", "forest", "town"]
        cmap = ds.colormap(1)
    from geounet.models.metadata import default_colors

    for i, hexcolor in enumerate(default_colors(["water", "forest", "town"], None)):
        assert "#%02x%02x%02x" % cmap[i][:3] == hexcolor


def test_scene_run_steps_and_a_custom_tile_source(tmp_path, model_file):
    """SceneRun's open -> feed -> commit; any TileSource is stitched the same way."""
    from geounet.config import RunOptions
    from geounet.pipeline.run import SceneRun
    from geounet.pipeline.sources import LocalTileSource

    class Counting:
        """A tile source wrapping the local one (as a Dask or remote source would)."""

        def __init__(self):
            self.n = 0

        def tiles(self, scene, plan, model, config, progress):
            for tile in LocalTileSource().tiles(scene, plan, model, config, progress):
                self.n += 1
                yield tile

    scene = random_scene(tmp_path / "s.tif", 150, 100)
    ref = predict_scene(scene, None, model=model_file, keep_arrays=True)
    source = Counting()
    run = SceneRun(scene, tmp_path / "o.gpkg", model=model_file, mask_out=tmp_path / "m.tif",
                   options=RunOptions(keep_arrays=True))
    with run:
        assert not (tmp_path / "o.gpkg").exists()
        run.feed(run.tiles(source))
        result = run.commit()
    assert source.n == result.tiles_predicted == result.tiles > 1
    assert np.array_equal(result.classes, ref.classes)
    assert result.n_polygons == ref.n_polygons and result.output.exists()
    with rasterio.open(result.mask_out) as ds:
        assert np.array_equal(ds.read(1), ref.classes)


def test_scene_run_abort_leaves_nothing(tmp_path, model_file):
    from geounet.pipeline.run import SceneRun
    from geounet.pipeline.sources import LocalTileSource

    scene = random_scene(tmp_path / "s.tif", 150, 100)
    before = sorted(tmp_path.iterdir())
    with pytest.raises(RuntimeError, match="source died"):
        with SceneRun(scene, tmp_path / "o.fgb", model=model_file,
                      prob_out=tmp_path / "p.tif", mask_out=tmp_path / "m.tif") as run:
            assert len(run.plan.row_offsets) > 1
            run.feed(run.tiles(LocalTileSource()))  # every tile row but the last ...
            assert run.classifier.valid_pixels > 0  # ... has reached the stages
            raise RuntimeError("source died")
    assert sorted(tmp_path.iterdir()) == before


def test_empty_scene_is_refused_before_files_are_finished(tmp_path, model_file):
    from builders import write_geotiff
    from geounet.errors import EmptySceneError

    scene = write_geotiff(tmp_path / "e.tif", np.zeros((1, 60, 80), np.uint16), nodata=0)
    before = sorted(tmp_path.iterdir())
    with pytest.raises(EmptySceneError, match="is nodata"):
        predict_scene(scene, tmp_path / "o.gpkg", model=model_file, mask_out=tmp_path / "m.tif")
    assert sorted(tmp_path.iterdir()) == before


@pytest.mark.parametrize("dtype,nodata", [("uint16", 0), ("float32", None)])
def test_nodata_travels_with_the_tiles_not_a_second_read(tmp_path, model_file, monkeypatch,
                                                         dtype, nodata):
    """The reader's validity reaches the classifier through NaN probabilities (no re-read)."""
    from builders import write_geotiff
    from geounet.constants import CLASS_NODATA
    from geounet.io.read import Scene

    rng = np.random.default_rng(3)
    data = rng.integers(100, 1000, size=(1, 90, 110)).astype(dtype)
    hole = np.zeros((90, 110), bool)
    hole[10:30, 20:75] = True  # inside tiles, across a tile border
    hole[60:, 100:] = True  # a corner at the scene's edge
    data[0][hole] = np.nan if nodata is None else nodata
    scene = write_geotiff(tmp_path / "s.tif", data, nodata=nodata)

    def no_second_read(self, window):
        raise AssertionError("validity was read again")

    monkeypatch.setattr(Scene, "read_valid", no_second_read)
    r = predict_scene(scene, None, model=model_file, tiling=TilingConfig(48, 8),
                      mask_out=tmp_path / "m.tif", prob_out=tmp_path / "p.tif")
    with rasterio.open(r.mask_out) as ds:
        cls = ds.read(1)
    with rasterio.open(tmp_path / "p.tif") as ds:
        probs = ds.read(1, masked=True)
    assert np.array_equal(cls == CLASS_NODATA, hole)
    assert np.array_equal(probs.mask, hole) and np.isfinite(probs.compressed()).all()
