"""Builders for the foreign-model tests: a 3-band uint8 scene and a small RGB model.

The model is one 3 x 3 convolution (mean brightness of the neighbourhood) with geounet's
metadata, wrapped in a :class:`~geounet.models.modelfile.LoadedModel`, so exports and
runs are fast and their masks follow the bright blobs of the scene.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from builders import write_geotiff

from geounet.models.metadata import ModelMetadata
from geounet.models.modelfile import LoadedModel


def rgb_scene(path, size=300, seed=0):
    """A uint8 RGB scene: bright rectangles (about 200) on a noisy dark ground (about 50)."""
    rng = np.random.default_rng(seed)
    data = rng.normal(50, 12, size=(3, size, size))
    for _ in range(25):
        r, c = rng.integers(0, size - 40, 2)
        h, w = rng.integers(12, 40, 2)
        data[:, r:r + h, c:c + w] += 150
    data = np.clip(data, 0, 255).astype("uint8")
    return write_geotiff(path, data, photometric="RGB")


def rgb_model(tmp_path, threshold=0.5, bands=(1, 2, 3), tile=64, overlap=8) -> LoadedModel:
    """A binary 3-band model: logit = 4 x the standardised brightness of a 3 x 3 window."""
    import torch

    n = len(bands)
    conv = torch.nn.Conv2d(n, 1, 3, padding=1)
    with torch.no_grad():
        conv.weight.fill_(4.0 / (9 * n))
        conv.bias.zero_()
    meta = ModelMetadata(
        name="rgb-blobs", architecture="test-conv", arch_args={}, bands=list(bands),
        band_names=[f"b{b}" for b in bands], band_mean=[127.0] * n, band_std=[50.0] * n,
        classes=["background", "building"], gsd_m=0.5, tile_size_px=tile, overlap_px=overlap,
        threshold=threshold, pad_multiple=32)
    source = Path(tmp_path) / "rgb-blobs.safetensors"  # exports record its SHA-256 only
    source.write_bytes(b"test model")
    return LoadedModel(conv.eval(), meta, source)


def classes_of(scene, model, **kw) -> np.ndarray:
    """The ``(h, w)`` class raster geounet makes of ``scene`` (255 = nodata)."""
    from geounet.pipeline.run import predict_scene

    return predict_scene(scene, None, model=model, keep_arrays=True, **kw).classes


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks."""
    return float((a & b).sum() / max((a | b).sum(), 1))
