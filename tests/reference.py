"""A deliberately simple whole-array reference of stages 1-4, kept for the tests.

It reads the whole scene, predicts every tile, and blends into full-size float32
arrays with its own copy of the weight formula. The streaming pipeline must give
the same class raster bit for bit and probabilities within 1/255.
"""

import numpy as np
import rasterio

from geounet.io.read import BandScaler
from geounet.pipeline.predictors import Predictor
from geounet.pipeline.tiling import plan_tiles


def ramp_weights(tile, overlap, at_start, at_end, margin=0):
    """Weights along one axis: 1e-4 for ``margin`` px at an interior edge, then a sin^2 ramp."""
    w = np.ones(tile, np.float32)
    if overlap:
        ramp = overlap - 2 * margin
        i = np.arange(ramp, dtype=np.float64)
        edge = np.concatenate([np.full(margin, 1e-4), np.sin(0.5 * np.pi * (i + 0.5) / ramp) ** 2,
                               np.ones(margin)])
        r = np.maximum(edge, 1e-4).astype(np.float32)
        if not at_start:
            w[:overlap] = np.minimum(w[:overlap], r)
        if not at_end:
            w[tile - overlap:] = np.minimum(w[tile - overlap:], r[::-1])
    return w


def reference_predict(scene_path, loaded, tile, overlap, threshold=None):
    """Return ``(probs (k, h, w) float32, classes (h, w) uint8)`` of the whole scene."""
    meta = loaded.metadata
    with rasterio.open(scene_path) as ds:
        data = ds.read(meta.bands, out_dtype="float32")
        valid = np.all(ds.read_masks(meta.bands) > 0, axis=0)
    data[:, ~valid] = 0
    x = BandScaler(meta.band_mean, meta.band_std)(data, valid)
    c, h, w = x.shape
    # past the scene's edge the pipeline continues the scene by reflection
    pad = np.pad(x, ((0, 0), (0, tile), (0, tile)), mode="reflect")
    vpad = np.zeros((h + tile, w + tile), bool)
    vpad[:h, :w] = valid
    plan = plan_tiles(w, h, tile, overlap, meta.pad_multiple, meta.context_px or 0)
    overlap, margin = plan.overlap_px, plan.margin_px
    predictor = Predictor(loaded.module, meta.binary, meta.pad_multiple, "cpu")  # as the pipeline
    k = meta.out_channels
    acc = np.zeros((k, h, w), np.float32)
    wsum = np.zeros((h, w), np.float32)
    for win in plan.windows:
        r, cc = int(win.row_off), int(win.col_off)
        if not vpad[r:r + tile, cc:cc + tile].any():
            continue
        p = predictor(pad[None, :, r:r + tile, cc:cc + tile])[0]
        wy = ramp_weights(tile, overlap, r == 0, r + tile >= h, margin)
        wx = ramp_weights(tile, overlap, cc == 0, cc + tile >= w, margin)
        ww = np.outer(wy, wx)[: h - r, : w - cc]
        hh, wd = ww.shape
        acc[:, r:r + hh, cc:cc + wd] += p[:, :hh, :wd] * ww
        wsum[r:r + hh, cc:cc + wd] += ww
    covered = wsum > 0
    probs = np.divide(acc, wsum, out=np.zeros_like(acc), where=covered)
    thr = meta.threshold if threshold is None else threshold
    classes = (probs[0] >= thr).astype(np.uint8) if meta.binary else probs.argmax(0).astype(np.uint8)
    classes[~(valid & covered)] = 255
    return probs, classes


def tiling_agreement(a, b, threshold=0.5, edge=128):
    """``(building IoU, max |dp|)`` of two ``(1, h, w)`` probability rasters, ``edge`` px in."""
    pa, pb = a[0, edge:-edge, edge:-edge], b[0, edge:-edge, edge:-edge]
    ca, cb = pa >= threshold, pb >= threshold
    union = (ca | cb).sum()
    iou = float((ca & cb).sum() / union) if union else 1.0
    return iou, float(np.nanmax(np.abs(pa - pb)))
