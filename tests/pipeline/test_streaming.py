"""Streaming results equal the whole-array references."""

import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin

from builders import random_scene, tiny_model, write_geotiff
from geounet.config import OutputConfig, TilingConfig, VectorizeConfig
from geounet.models import load_model
from geounet.pipeline import predict_scene
from geounet.pipeline.arrays import vectorize
from geounet.pipeline.postprocess import finish_polygons
from geounet.pipeline.vectorize import StreamingVectorizer
from reference import reference_predict

T = from_origin(733600.0, 3725140.0, 0.5, 0.5)


def generated_mask(seed, h=300, w=220, classes=3):
    """Rectangles of random classes, long objects spanning many strips, a ring with an island."""
    rng = np.random.default_rng(seed)
    cls = np.zeros((h, w), np.uint8)
    for _ in range(40):
        r, c = rng.integers(0, h - 3), rng.integers(0, w - 3)
        cls[r : r + rng.integers(1, 120), c : c + rng.integers(1, 30)] = rng.integers(1, classes)
    cls[20:280, 100:104] = 1                       # spans every strip
    cls[100:200, 20:90] = 2
    cls[120:180, 35:75] = 0                        # hole ...
    cls[140:160, 50:60] = 2                        # ... with an island
    cls[rng.random((h, w)) < 0.03] = 255           # nodata speckle
    return cls


def streamed(cls, probs, strips, conn, names):
    out = []
    config = VectorizeConfig(connectivity=conn)
    sv = StreamingVectorizer(cls.shape[1], T, "EPSG:32616", names,
                             lambda g: out.append(finish_polygons(g, config, T)), config)
    r0 = 0
    for n in strips:
        sv.add_rows(r0, cls[r0 : r0 + n], None if probs is None else probs[:, r0 : r0 + n])
        r0 += n
    sv.finish()
    assert r0 == cls.shape[0]
    return pd.concat(out, ignore_index=True) if out else None


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("conn", [4, 8])
def test_streamed_polygons_equal_one_shapes_call(seed, conn):
    cls = generated_mask(seed)
    probs = np.random.default_rng(seed).random((3, *cls.shape)).astype(np.float32)
    names = ["bg", "a", "b"]
    ref = vectorize(cls, T, "EPSG:32616", names, probs=probs,
                    config=VectorizeConfig(connectivity=conn))
    rng = np.random.default_rng(100 + seed)
    strips = []
    while sum(strips) < cls.shape[0]:
        strips.append(int(min(rng.integers(1, 50), cls.shape[0] - sum(strips))))
    got = streamed(cls, probs, strips, conn, names)
    assert len(got) == len(ref)

    def key(df):
        return sorted(zip((shapely.normalize(g).wkb for g in df.geometry), df.class_id,
                          np.round(df.score, 5), df.area_m2))

    assert key(got) == key(ref)  # identical geometries (after normalisation) and attributes
    assert any(g.interiors for g in got.geometry)  # holes survive the merge


def test_one_row_strips_and_single_strip():
    cls = generated_mask(9, h=60, w=50)
    probs = np.zeros((1, 60, 50), np.float32)
    ref = vectorize(cls, T, "EPSG:32616", ["bg", "a", "b"], probs=probs)
    for strips in ([1] * 60, [60]):
        got = streamed(cls, probs, strips, 4, ["bg", "a", "b"])
        assert sorted(shapely.normalize(g).wkb for g in got.geometry) == \
            sorted(shapely.normalize(g).wkb for g in ref.geometry)


@pytest.mark.parametrize("seed", range(2))
def test_streamed_polygons_without_scores(seed):
    """Without probabilities only the edge rows are labelled; the polygons are the same."""
    cls = generated_mask(seed + 20)
    ref = vectorize(cls, T, "EPSG:32616", ["bg", "a", "b"])
    got = streamed(cls, None, [7, 1, 2, 60, 3, 100, 127], 4, ["bg", "a", "b"])
    assert sorted(shapely.normalize(g).wkb for g in got.geometry) == \
        sorted(shapely.normalize(g).wkb for g in ref.geometry)
    assert got.score.isna().all()


def test_strips_must_be_contiguous():
    sv = StreamingVectorizer(10, T, "EPSG:32616", ["bg", "a"], lambda g: None)
    sv.add_rows(0, np.zeros((5, 10), np.uint8))
    with pytest.raises(ValueError):
        sv.add_rows(6, np.zeros((5, 10), np.uint8))


@pytest.mark.parametrize("tile,overlap,nodata", [(64, 16, False), (48, 20, True), (100, 0, False)])
def test_pipeline_equals_whole_array_reference(tmp_path, model_file, tile, overlap, nodata):
    data = np.random.default_rng(tile).integers(100, 1000, (1, 170, 230)).astype(np.uint16)
    if nodata:
        data[0, 60:130, :] = 0  # whole tile rows skipped
    scene = write_geotiff(tmp_path / "s.tif", data, nodata=0 if nodata else None)
    r = predict_scene(scene, tmp_path / "o.gpkg", model=model_file, tiling=TilingConfig(tile, overlap),
                      prob_out=tmp_path / "p.tif", mask_out=tmp_path / "m.tif",
                      outputs=OutputConfig(prob_dtype="float32"), keep_footprints=True)
    loaded = load_model(model_file)
    ref_p, ref_c = reference_predict(scene, loaded, tile, overlap)
    with rasterio.open(r.mask_out) as m, rasterio.open(r.prob_out) as p:
        assert np.array_equal(m.read(1), ref_c)  # bit for bit
        got_p = np.nan_to_num(p.read())
    assert np.abs(got_p - np.where(ref_c == 255, 0, ref_p)).max() <= 1 / 255
    whole = vectorize(ref_c, T, "EPSG:32616", loaded.metadata.classes, probs=ref_p)
    assert sorted(shapely.normalize(g).wkb for g in r.footprints.geometry) == \
        sorted(shapely.normalize(g).wkb for g in whole.geometry)


def test_multiclass_pipeline_equals_reference(tmp_path):
    model = tiny_model(tmp_path / "mc.safetensors", bands=(1, 2),
                       classes=("bg", "water", "forest"))
    scene = random_scene(tmp_path / "s.tif", 150, 140, count=2)
    r = predict_scene(scene, None, model=model, tiling=TilingConfig(64, 16),
                      mask_out=tmp_path / "m.tif")
    ref_p, ref_c = reference_predict(scene, load_model(model), 64, 16)
    with rasterio.open(r.mask_out) as m:
        assert np.array_equal(m.read(1), ref_c)
    whole = vectorize(ref_c, T, "EPSG:32616", ["bg", "water", "forest"], probs=ref_p)
    assert len(r.footprints) == len(whole)
    assert np.allclose(sorted(r.footprints.score), sorted(whole.score), atol=1e-5)


def test_split_fill_and_regularize_see_whole_polygons_across_strips():
    """Footprint post-processing runs on merged polygons: streamed equals whole-array."""
    cls = np.zeros((120, 140), np.uint8)
    cls[10:50, 10:50] = 1          # two 20 m buildings joined by a 2 m neck ...
    cls[26:34, 50:60] = 1
    cls[10:50, 60:100] = 1
    cls[25:29, 25:29] = 0          # ... one with a 4 m2 hole
    cls[70:110, 20:120] = 1        # a long building
    cfg = VectorizeConfig(split_touching=True, fill_holes_m2=5, regularize=True)
    ref = vectorize(cls, T, "EPSG:32616", ["bg", "building"], config=cfg)
    out = []
    sv = StreamingVectorizer(140, T, "EPSG:32616", ["bg", "building"],
                             lambda g: out.append(finish_polygons(g, cfg, T)), cfg)
    for r0 in range(0, 120, 16):  # strips cut every building
        sv.add_rows(r0, cls[r0 : r0 + 16])
    sv.finish()
    got = pd.concat(out, ignore_index=True)
    assert len(ref) == len(got) == 3  # the joined pair is split, the long one is not
    key = lambda g: sorted(round(a, 3) for a in g.area)  # noqa: E731
    assert key(ref.geometry) == key(got.geometry)
    assert all(len(p.interiors) == 0 for p in got.geometry)  # the small hole is filled
    assert got.geometry.is_valid.all()
