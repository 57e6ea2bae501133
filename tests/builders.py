"""Test data builders shared by the test modules, in one place.

* the bundled samples' paths;
* seeded GeoTIFFs and tiny model files (:func:`write_geotiff`, :func:`random_scene`,
  :func:`tiny_model`);
* small training scenes with label polygons (:func:`synthetic`, :func:`sparse_landcover`);
* synthetic footprints for :mod:`geounet.footprints` (:func:`frame`, :func:`polygons_of`),
  built from pixel masks with ``rasterio.features.shapes`` on a 0.5 m UTM grid
  (:data:`FOOTPRINT_T`) or a small geographic grid near Atlanta (:data:`T_GEO`).

Import them with ``from builders import ...`` (``tests/`` is on ``sys.path`` through
``pythonpath`` in ``pyproject.toml``).
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio import features
from rasterio.transform import from_origin

from geounet.geometry import metric_geometries

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_SCENE = ROOT / "examples" / "data" / "atlanta_sample.tif"
SAMPLE_LABELS = ROOT / "examples" / "data" / "atlanta_buildings.geojson"
LANDSAT_SCENE = ROOT / "examples" / "data" / "landsat_raleigh.tif"
LANDSAT_LABELS = ROOT / "examples" / "data" / "landsat_landcover.shp"


def write_geotiff(path, data, crs="EPSG:32616", transform=None, nodata=None, **extra):
    """Write a ``(bands, h, w)`` array as a GeoTIFF; returns ``path``."""
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[None]
    count, h, w = data.shape
    transform = transform or from_origin(733600.0, 3725140.0, 0.5, 0.5)
    profile = dict(driver="GTiff", width=w, height=h, count=count, dtype=data.dtype.name,
                   transform=transform, **extra)
    if crs is not None:
        profile["crs"] = crs
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data)
    return Path(path)


def random_scene(path, width=300, height=200, count=1, seed=0, dtype="uint16", **kw):
    """A seeded random scene: ``count`` bands of ``dtype`` noise."""
    rng = np.random.default_rng(seed)
    data = rng.integers(100, 1000, size=(count, height, width)).astype(dtype)
    return write_geotiff(path, data, **kw)


def tiny_model(path, bands=(1,), classes=("background", "building"), seed=0, tile=64,
               overlap=16, base=4, depth=2, threshold=0.5, background_class=0):
    """Save an untrained, seeded, tiny U-Net model file."""
    import torch

    from geounet.models import ModelMetadata, build_model, save_model

    torch.manual_seed(seed)
    out = 1 if len(classes) == 2 else len(classes)
    model = build_model("unet", len(bands), out, base_channels=base, depth=depth)
    meta = ModelMetadata(
        name=Path(path).stem, architecture="unet",
        arch_args={"base_channels": base, "depth": depth}, bands=list(bands),
        band_names=[f"b{b}" for b in bands], band_mean=[500.0] * len(bands),
        band_std=[250.0] * len(bands), classes=list(classes), gsd_m=0.5, tile_size_px=tile,
        overlap_px=overlap, threshold=threshold, pad_multiple=2**depth,
        background_class=background_class,
    )
    save_model(model, meta, path)
    return Path(path)


# ---------------------------------------------------------------- label scenes

LABEL_T = from_origin(500000, 4000000, 1, 1)
"""Grid of the label scenes: 1 m pixels in EPSG:32616."""


def synthetic(tmp_path, seed=0, n=14):
    """Bright squares (buildings) on a noisy dark ground, and their polygons."""
    rng = np.random.default_rng(seed)
    img = rng.normal(300, 40, (128, 256))
    boxes = []
    for _ in range(n):
        r, c = int(rng.integers(4, 108)), int(rng.integers(4, 236))
        s = int(rng.integers(8, 16))
        img[r : r + s, c : c + s] = rng.normal(900, 40)
        boxes.append(shapely.box(500000 + c, 4000000 - r - s, 500000 + c + s, 4000000 - r))
    scene = write_geotiff(tmp_path / "syn.tif", img.clip(0, 2000).astype(np.uint16), transform=LABEL_T)
    labels = tmp_path / "syn.gpkg"
    gpd.GeoDataFrame({"kind": ["a", "b"] * (n // 2)}, geometry=boxes,
                     crs="EPSG:32616").to_file(labels)
    return scene, labels


def sparse_landcover(tmp_path, seed=0):
    """Three spectrally distinct land covers in bands 1-2, each labelled by a few polygons
    (most pixels unlabelled), as in a land-cover training set."""
    rng = np.random.default_rng(seed)
    h, w = 128, 192
    cover = np.zeros((h, w), int)
    cover[:, 64:128] = 1
    cover[:, 128:] = 2
    means = np.array([[200, 800], [800, 200], [600, 600]])
    img = np.stack([rng.normal(means[cover, b], 30) for b in range(2)]).clip(0, 2000)
    scene = write_geotiff(tmp_path / "lc.tif", img.astype(np.uint16), transform=LABEL_T)
    polys, names, codes = [], [], []
    for k, name in enumerate(["water", "field", "town"]):
        for r in (8, 48, 88):
            c = 64 * k + 8 + (r % 3) * 4
            polys.append(shapely.box(500000 + c, 4000000 - r - 24, 500000 + c + 24, 4000000 - r))
            names.append(name)
            codes.append(k + 1)
    labels = tmp_path / "lc.gpkg"
    gpd.GeoDataFrame({"name": names, "code": codes}, geometry=polys,
                     crs="EPSG:32616").to_file(labels)
    return scene, labels


# ---------------------------------------------------------------- footprints

UTM = "EPSG:32616"
FOOTPRINT_T = Affine(0.5, 0, 500000, 0, -0.5, 3700000)
PX_M2 = 0.25
# about 0.46 m x 0.55 m pixels near lon -84.4, lat 33.7
GEO = "EPSG:4326"
T_GEO = Affine(5e-6, 0, -84.4, 0, -5e-6, 33.7)
COLUMNS = ["class_id", "class_name", "area_m2", "score", "geometry"]


def frame(geoms, crs=UTM, scores=None) -> gpd.GeoDataFrame:
    """A footprint frame (geounet's columns) of ``geoms``, areas measured as geounet does."""
    n = len(geoms)
    gdf = gpd.GeoDataFrame(
        {"class_id": np.ones(n, np.int32), "class_name": ["building"] * n,
         "area_m2": np.zeros(n),
         "score": np.linspace(0.6, 0.9, n) if scores is None else np.asarray(scores, float)},
        geometry=gpd.GeoSeries(list(geoms), crs=crs), crs=crs)
    if n:
        metric, factor = metric_geometries(gdf)
        gdf["area_m2"] = metric.area.to_numpy() * factor**2
    return gdf


def polygons_of(mask, transform=FOOTPRINT_T):
    """The polygons of a boolean mask, from pixel edges."""
    return [shapely.geometry.shape(g) for g, _ in
            features.shapes(mask.astype(np.uint8), mask=mask, transform=transform)]


def check_frame(out, like):
    """Assert ``out`` is a footprint frame like ``like``: columns, CRS, index, valid areas."""
    assert list(out.columns) == list(like.columns)
    assert out.crs == like.crs
    assert list(out.index) == list(range(len(out)))
    assert out["class_id"].dtype == np.int32
    geoms = out.geometry.to_numpy()
    assert shapely.is_valid(geoms).all()
    assert not shapely.is_empty(geoms).any()
    assert set(out.geom_type) <= {"Polygon", "MultiPolygon"}
    metric, factor = metric_geometries(out) if len(out) else (None, 1.0)
    if len(out):
        np.testing.assert_allclose(out["area_m2"], metric.area * factor**2, rtol=1e-6)


def scene_row(tmp_path, n=3, seed=0, width=256, height=128, coarse=None):
    """``n`` synthetic scenes side by side (each ``width`` x ``height`` px at 1 m) and one
    label file covering them all, as a city cut into tiles.

    ``coarse``: index of a scene written at 2 m instead (half the pixels, averaged),
    to exercise resampling to the training GSD. Returns ``(scenes, labels)``.
    """
    rng = np.random.default_rng(seed)
    img = rng.normal(300, 40, (height, width * n))
    boxes = []
    for _ in range(10 * n):
        r, c = int(rng.integers(4, height - 20)), int(rng.integers(4, width * n - 20))
        s = int(rng.integers(8, 16))
        img[r : r + s, c : c + s] = rng.normal(900, 40)
        boxes.append(shapely.box(500000 + c, 4000000 - r - s, 500000 + c + s, 4000000 - r))
    img = img.clip(0, 2000)
    scenes = []
    for k in range(n):
        part = img[:, k * width:(k + 1) * width]
        t = Affine(1, 0, 500000 + k * width, 0, -1, 4000000)
        if k == coarse:
            part = part.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3))
            t = Affine(2, 0, 500000 + k * width, 0, -2, 4000000)
        scenes.append(write_geotiff(tmp_path / f"tile{k}.tif", part.astype(np.uint16),
                                    transform=t))
    labels = tmp_path / "city.gpkg"
    gpd.GeoDataFrame({"kind": ["a", "b"] * (len(boxes) // 2)}, geometry=boxes,
                     crs="EPSG:32616").to_file(labels)
    return scenes, labels


def copy_at_gsd(path, gsd_m: float, src_path=SAMPLE_SCENE):
    """The Atlanta chip (or ``src_path``) resampled to ``gsd_m`` (same CRS and origin).

    Reduced with ``average`` (what a coarser sensor integrates), enlarged with ``cubic``
    (as a data provider resamples a product). Used by ``tests/pipeline/test_resample.py``
    and ``benchmarks/augmentation.py``.
    """
    from rasterio.enums import Resampling
    from rasterio.warp import reproject

    with rasterio.open(src_path) as src:
        f = gsd_m / src.res[0]
        w, h = round(src.width / f), round(src.height / f)
        t = src.transform * src.transform.scale(f, f)
        out = np.zeros((1, h, w), np.uint16)
        reproject(rasterio.band(src, 1), out, dst_transform=t, dst_crs=src.crs,
                  src_nodata=0, dst_nodata=0,
                  resampling=Resampling.average if f > 1 else Resampling.cubic)
    return write_geotiff(path, out, transform=t, nodata=0)
