"""Dask distributed runs give the local result (LocalCluster, 2 worker processes)."""

import numpy as np
import pytest
import rasterio
import shapely

from builders import random_scene
from geounet.config import OutputConfig, PredictConfig, TilingConfig
from geounet.api import predict_scene, predict_scenes



@pytest.fixture(scope="module")
def client():
    from geounet.distributed import connect

    with connect("local:2") as c:
        assert len(c.scheduler_info()["workers"]) == 2
        yield c


def read(path):
    with rasterio.open(path) as ds:
        return ds.read(masked=False)


def test_one_scene_in_blocks_equals_local(tmp_path, model_file, client):
    scene = random_scene(tmp_path / "s.tif", 260, 330, seed=11)
    opts = dict(model=model_file, tiling=TilingConfig(64, 16),
                predict=PredictConfig(batch_size=3), outputs=OutputConfig(prob_dtype="float32"),
                keep_footprints=True)
    local = predict_scene(scene, tmp_path / "local.gpkg", prob_out=tmp_path / "lp.tif",
                          mask_out=tmp_path / "lm.tif", **opts)
    dist = predict_scene(scene, tmp_path / "dist.gpkg", prob_out=tmp_path / "dp.tif",
                         mask_out=tmp_path / "dm.tif", client=client, **opts)
    assert np.array_equal(read(tmp_path / "lm.tif"), read(tmp_path / "dm.tif"))
    assert np.abs(np.nan_to_num(read(tmp_path / "lp.tif")) -
                  np.nan_to_num(read(tmp_path / "dp.tif"))).max() <= 1 / 255
    assert sorted(shapely.normalize(g).wkb for g in local.footprints.geometry) == \
        sorted(shapely.normalize(g).wkb for g in dist.footprints.geometry)
    # the tiles really ran on the workers: each worker process loaded the model
    loaded = client.run(lambda: sorted(k for k in __import__("geounet.distributed").distributed
                                       ._MODELS if isinstance(k, str)))
    assert len(loaded) == 2 and any(v == [str(model_file)] for v in loaded.values())


def test_many_scenes_spread_over_workers(tmp_path, model_file, client):
    scenes = [random_scene(tmp_path / f"t{i}.tif", 100 + 20 * i, 90, seed=i) for i in range(4)]
    (tmp_path / "local").mkdir()
    (tmp_path / "dist").mkdir()
    local = predict_scenes(scenes, tmp_path / "local", "fgb", model=model_file,
                           mask_out_dir=tmp_path / "local")
    dist = predict_scenes(scenes, tmp_path / "dist", "fgb", model=model_file,
                          mask_out_dir=tmp_path / "dist", client=client)
    assert [r.output.name for r in dist] == [f"t{i}.fgb" for i in range(4)]
    for i in range(4):
        assert np.array_equal(read(tmp_path / "local" / f"t{i}_classes.tif"),
                              read(tmp_path / "dist" / f"t{i}_classes.tif"))
    assert [r.n_polygons for r in local] == [r.n_polygons for r in dist]


def test_cli_scheduler_local(tmp_path, model_file, runner):
    from geounet.cli import cli

    scene = random_scene(tmp_path / "s.tif", 150, 120)
    r = runner.invoke(cli, ["predict", str(scene), "-o", str(tmp_path / "o.geojson"), "--model",
                            str(model_file), "--mask-out", str(tmp_path / "m.tif"),
                            "--scheduler", "local:2", "-q"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "o.geojson").exists() and (tmp_path / "m.tif").exists()


def test_bad_scheduler_address(tmp_path, model_file, runner):
    from geounet.cli import cli

    scene = random_scene(tmp_path / "s.tif", 50, 50)
    r = runner.invoke(cli, ["predict", str(scene), "-o", str(tmp_path / "o.geojson"), "--model",
                            str(model_file), "--scheduler", "tcp://127.0.0.1:1", "-q"])
    assert r.exit_code == 1 and "cannot reach Dask scheduler" in r.output
    assert not (tmp_path / "o.geojson").exists()
