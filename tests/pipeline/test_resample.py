"""Ground resolution (issue 12): scenes read at the model's GSD, rasters back on their grid."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
import rasterio
from builders import SAMPLE_LABELS, SAMPLE_SCENE, copy_at_gsd, random_scene, write_geotiff
from rasterio.transform import from_origin
from rasterio.windows import Window

from geounet.cli import cli
from geounet.config import OutputConfig, PredictConfig, ResampleConfig
from geounet.errors import InvalidOptionError
from geounet.evaluation import evaluate
from geounet.io.read import Scene
from geounet.io.regrid import model_grid
from geounet.models import bundled_models, read_metadata
from geounet.pipeline.resample import choose_grid

CPU = PredictConfig(device="cpu", runtime="onnxruntime")


_copy_at = copy_at_gsd


def _footprint_f1(scene, tmp_path, name, **kw):
    """Building F1 on the whole chip and the run's result (class raster on the scene's grid)."""
    import geounet

    mask = tmp_path / f"{name}.tif"
    result = geounet.predict(scene, None, mask_out=mask, predict=CPU, **kw)
    return evaluate(mask, SAMPLE_LABELS).buildings.f1, result, mask


@pytest.fixture(scope="module")
def native_f1(tmp_path_factory):
    """Footprint F1 of the bundled model on the chip at its own 0.5 m."""
    f1, _, _ = _footprint_f1(SAMPLE_SCENE, tmp_path_factory.mktemp("native"), "native")
    return f1


@pytest.mark.parametrize("gsd_m", [0.3, 0.8])
def test_resampled_copies_keep_the_footprint_f1_only_with_auto(tmp_path, native_f1, gsd_m):
    """0.3 m and 0.8 m copies: auto keeps most of the native F1, off loses it; areas agree."""
    scene = _copy_at(tmp_path / f"atlanta_{gsd_m}.tif", gsd_m)
    auto, result, mask = _footprint_f1(scene, tmp_path, "auto")
    off, _, _ = _footprint_f1(scene, tmp_path, "off", resample="off")
    with rasterio.open(mask) as got, rasterio.open(scene) as src:
        assert (got.width, got.height, got.transform, got.crs) == (
            src.width, src.height, src.transform, src.crs)  # back on the scene's grid
    # measured with geounet 0.1's model: native 0.698; 0.3 m: auto 0.625, off 0.032; 0.8 m:
    # auto 0.723, off 0.338. The equivariant model retrained for issue 13 (native 0.705) loses
    # less at 0.8 m without resampling (off 0.532, auto 0.637)
    assert auto >= 0.8 * native_f1, (gsd_m, auto, native_f1)
    if gsd_m == 0.3:
        assert off <= 0.6 * native_f1 and auto - off >= 0.25, (gsd_m, off, auto, native_f1)
    else:
        assert auto - off >= 0.05, (gsd_m, off, auto, native_f1)
    # polygons are georeferenced on the model grid: their area_m2 is the ground area
    gdf = result.footprints
    assert np.allclose(gdf.area_m2, gdf.geometry.area, rtol=1e-6)


def test_same_gsd_is_not_resampled_and_without_gsd_never(tmp_path, caplog):
    """Within the 10 % tolerance nothing changes; a model without gsd_m is never resampled."""
    meta = read_metadata(bundled_models()["buildings-atlanta"])
    caplog.set_level(logging.INFO, logger="geounet")
    with Scene(random_scene(tmp_path / "s.tif", 50, 40,
                            transform=from_origin(0, 0, 0.54, 0.54))) as scene:
        assert choose_grid(scene, meta, ResampleConfig()) is None
        assert "within 10 %" in caplog.text
        grid = choose_grid(scene, meta, ResampleConfig(tolerance=0.05))
        assert grid is not None and grid.resampling == "nearest"
        assert choose_grid(scene, dataclasses.replace(meta, gsd_m=None), ResampleConfig()) is None
        assert "has no gsd_m" in caplog.text
        assert scene.grid is None  # deciding reads nothing new


def test_model_grid_covers_the_scene_in_each_direction():
    """Finer scenes are reduced with average, coarser ones enlarged with nearest."""
    from geounet.io.regrid import Grid

    scene = Grid(900, 450, rasterio.crs.CRS.from_epsg(32616), from_origin(100, 200, 0.3, 0.3))
    fine = model_grid(scene, (0.3, 0.3), 0.5, 0.1)
    assert fine is not None and fine.resampling == "average" and fine.factor == pytest.approx(5 / 3)
    assert (fine.grid.width, fine.grid.height) == (540, 270)
    assert fine.grid.transform.a == pytest.approx(0.5) and fine.grid.transform.c == 100
    assert fine.back_resampling("classes") == "nearest"
    assert fine.back_resampling("probabilities") == "bilinear"
    coarse = model_grid(dataclasses.replace(scene, transform=from_origin(100, 200, 0.8, 0.8)),
                        (0.8, 0.8), 0.5, 0.1)
    assert coarse is not None and coarse.resampling == "nearest"
    assert (coarse.grid.width, coarse.grid.height) == (1440, 720)
    assert coarse.back_resampling("probabilities") == "average"
    assert model_grid(scene, (0.52, 0.52), 0.5, 0.1) is None
    with pytest.raises(InvalidOptionError, match="resample mode 'maybe'"):
        ResampleConfig(mode="maybe")
    with pytest.raises(InvalidOptionError, match="output grid"):
        ResampleConfig(output_grid="pixels")


def test_output_grid_nodata_and_arrays(tmp_path, model_file):
    """Rasters and arrays come back on the scene's grid with its nodata, or stay on the model's."""
    import geounet

    data = np.random.default_rng(1).integers(100, 1000, (1, 120, 150)).astype("uint16")
    data[0, :30, :40] = 0
    scene = write_geotiff(tmp_path / "s.tif", data, transform=from_origin(0, 0, 0.8, 0.8),
                          nodata=0)
    kw = dict(model=model_file, predict=dataclasses.replace(CPU, runtime="torch"),
              keep_arrays=True)
    res = geounet.predict(scene, None, mask_out=tmp_path / "m.tif", prob_out=tmp_path / "p.tif",
                          **kw)
    assert res.classes.shape == (120, 150) and res.probs.shape == (1, 120, 150)
    assert (res.classes[:30, :40] == 255).all() and (res.classes[30:] != 255).all()
    assert np.isnan(res.probs[0, :30, :40]).all() and np.isfinite(res.probs[0, 30:]).all()
    with rasterio.open(tmp_path / "m.tif") as m, rasterio.open(tmp_path / "p.tif") as p:
        assert m.shape == p.shape == (120, 150) and m.transform == p.transform
        assert np.array_equal(m.read(1), res.classes)
        assert np.array_equal(p.read_masks(1) > 0, res.classes != 255)
    res_m = geounet.predict(scene, None, mask_out=tmp_path / "mm.tif", **kw,
                            resample=ResampleConfig(output_grid="model"))
    with rasterio.open(tmp_path / "mm.tif") as mm:
        assert mm.shape == (192, 240) and mm.transform.a == pytest.approx(0.5)
    assert res_m.classes.shape == (192, 240)
    assert res_m.n_polygons == res.n_polygons
    geounet.predict(scene, None, mask_out=tmp_path / "c.tif", outputs=OutputConfig(cog=True),
                    **kw)
    with rasterio.open(tmp_path / "c.tif") as c:
        assert c.shape == (120, 150) and c.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert np.array_equal(c.read(1), res.classes)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.tif", "m.tif", "mm.tif", "p.tif",
                                                          "s.tif"]


def test_geographic_scene_is_resampled_on_the_ground(tmp_path, model_file):
    """A lon/lat scene: its GSD is measured in metres and the model grid stays in degrees."""
    import geounet

    deg = 0.8 / 111_195  # 0.8 m of latitude
    scene = random_scene(tmp_path / "g.tif", 90, 70, crs="EPSG:4326",
                         transform=from_origin(-84.48, 33.64, deg / np.cos(np.radians(33.64)),
                                               deg))
    with Scene(scene) as s:
        grid = choose_grid(s, read_metadata(model_file), ResampleConfig())
        assert grid is not None and grid.factor == pytest.approx(0.625, rel=0.01)
        assert grid.grid.crs.is_geographic and 144 <= grid.grid.width <= 145
    res = geounet.predict(scene, None, model=model_file, mask_out=tmp_path / "m.tif",
                          predict=dataclasses.replace(CPU, runtime="torch"))
    with rasterio.open(tmp_path / "m.tif") as m:
        assert m.shape == (70, 90) and m.crs.is_geographic
    assert res.n_polygons >= 0


def test_cli_options_and_verbose_decision(tmp_path, runner, model_file, caplog):
    """--resample off and --output-grid model reach the run; -v logs GSDs and factor."""
    scene = random_scene(tmp_path / "s.tif", 100, 80, transform=from_origin(0, 0, 0.3, 0.3))
    args = ["predict", str(scene), "-o", str(tmp_path / "o.gpkg"), "--model", str(model_file),
            "--device", "cpu", "--runtime", "torch", "--progress", "none", "--overwrite"]
    r = runner.invoke(cli, [*args, "-v", "--mask-out", str(tmp_path / "m.tif"),
                            "--output-grid", "model"])
    assert r.exit_code == 0, r.output
    assert "ground resolution: scene 0.3 m, model 0.5 m, factor 1.667" in caplog.text
    with rasterio.open(tmp_path / "m.tif") as m:
        assert m.shape == (48, 60)
    r = runner.invoke(cli, [*args, "--resample", "off", "--mask-out", str(tmp_path / "n.tif")])
    assert r.exit_code == 0, r.output
    assert "resampling is off" in caplog.text
    with rasterio.open(tmp_path / "n.tif") as m:
        assert m.shape == (80, 100)


def test_dask_worker_block_reads_the_model_grid(tmp_path, model_file):
    """A Dask worker's block (``predict_block``) reads the same WarpedVRT as the local source."""
    from geounet.config import RunOptions
    from geounet.distributed import predict_block
    from geounet.pipeline.run import SceneRun
    from geounet.pipeline.sources import LocalTileSource

    scene = random_scene(tmp_path / "s.tif", 100, 90, transform=from_origin(0, 0, 0.8, 0.8))
    config = dataclasses.replace(CPU, runtime="torch")
    with SceneRun(scene, None, model=model_file, options=RunOptions(predict=config)) as run:
        assert run.scene.grid is not None and (run.scene.width, run.scene.height) == (160, 144)
        local = list(run.tiles(LocalTileSource()))
        block = predict_block(str(scene), run.scene.bands, run.plan.windows, str(model_file),
                              config, run.scene.grid)
    assert [w for w, _ in block] == [w for w, _ in local]
    for (_, a), (_, b) in zip(block, local, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["nodata", "mask", "alpha"])
def test_scene_validity_survives_the_warp(tmp_path, kind):
    """A nodata value, an internal mask or an alpha band mark the same model-grid pixels."""
    data = np.full((4 if kind == "alpha" else 3, 100, 100), 120, np.uint8)
    kw: dict = {"transform": from_origin(0, 0, 0.3, 0.3)}
    if kind == "nodata":
        data[:, :50, :50] = 0
        kw["nodata"] = 0
    elif kind == "alpha":
        data[3] = 255
        data[3, :50, :50] = 0
        kw.update(photometric="RGB", alpha="YES")
    path = write_geotiff(tmp_path / f"{kind}.tif", data, **kw)
    if kind == "mask":
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "r+") as ds:
            mask = np.full((100, 100), 255, np.uint8)
            mask[:50, :50] = 0
            ds.write_mask(mask)
    with Scene(path, [1, 2, 3]) as scene:
        scene.use_grid(model_grid(scene.native_grid(), scene.pixel_size_m(), 0.5, 0.1))
        assert (scene.width, scene.height) == (60, 60)
        values, valid = scene.read(Window(-4, -4, 64, 64))  # padded
        assert not valid[:4].any() and not valid[4:33, 4:33].any() and valid[36:, 36:].all()
        assert (values[:, valid] == 120).all()
