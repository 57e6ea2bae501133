"""Shared fixtures: small seeded GeoTIFFs and tiny model files, made in tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

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


@pytest.fixture
def scene(tmp_path):
    """A 300x200 1-band uint16 scene in EPSG:32616 at 0.5 m."""
    return random_scene(tmp_path / "scene.tif")


@pytest.fixture(scope="session")
def model_file(tmp_path_factory):
    """A tiny binary 1-band model file."""
    return tiny_model(tmp_path_factory.mktemp("models") / "tiny.safetensors")


@pytest.fixture
def runner():
    """click's CliRunner (stderr kept separate where click supports it)."""
    from click.testing import CliRunner

    return CliRunner()
