"""Measure a model's context on a scene or synthetic regions.

The regions :func:`geounet.context.measure_regions` compares tiles on, read
from a real scene as ``geounet predict`` reads it (:func:`scene_regions`; a
training scene on its training grid, :func:`open_scene_regions`) or, for a model that
comes without a scene, seeded smooth noise (:func:`synthetic_regions`);
:func:`measure_context` runs a model file on them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.windows import Window

from geounet.context import ContextMeasure, PredictFn, measure_regions, measure_stride
from geounet.errors import InvalidOptionError

log = logging.getLogger(__name__)


def region_windows(width: int, height: int, size: int, n: int, seed: int) -> list[Window]:
    """``n`` seeded square windows of ``size`` px inside a ``width x height`` scene.

    A scene smaller than ``size`` gets windows at 0 that reach past its edge.
    """
    rng = np.random.default_rng(seed)
    cols = rng.integers(0, max(1, width - size + 1), n)
    rows = rng.integers(0, max(1, height - size + 1), n)
    return [Window(int(c), int(r), size, size) for c, r in zip(cols, rows, strict=True)]


def synthetic_regions(bands: int, size: int, n: int, seed: int = 0,
                      scale_px: float = 8.0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded smooth random regions in the model's input space (standardised).

    For models that come without a scene (``geounet import``): Gaussian noise
    low-passed with a Gaussian of ``scale_px`` px and rescaled to unit variance
    per band. Real scenes give a truer figure; the record says which was used.

    Returns:
        ``n`` pairs ``((bands, size, size) float32, (size, size) bool all True)``.
    """
    rng = np.random.default_rng(seed)
    f = np.fft.fftfreq(size)
    low = np.exp(-2 * (np.pi * scale_px) ** 2 * (f[:, None] ** 2 + f[None, :] ** 2))
    out = []
    for _ in range(n):
        noise = rng.standard_normal((bands, size, size))
        x = np.fft.ifft2(np.fft.fft2(noise) * low).real
        x = (x - x.mean(axis=(1, 2), keepdims=True)) / x.std(axis=(1, 2), keepdims=True)
        out.append((x.astype(np.float32), np.ones((size, size), bool)))
    return out


def scene_regions(scene_path: Any, meta: Any, size: int, n: int, seed: int = 0,
                  bands: list[int] | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` seeded regions of a scene, read and scaled as ``geounet predict`` does.

    Args:
        scene_path: The raster.
        meta: The model's :class:`~geounet.models.metadata.ModelMetadata`.
        size: Region size (px).
        n: Number of regions; windows with less than half their pixels valid
            (of those inside a scene smaller than ``size``) are replaced (up to
            ``4 n`` tries).
        seed: Seed of the positions.
        bands: 1-based bands (default: the model's).

    Returns:
        ``(scaled (bands, size, size) float32, valid (size, size) bool)`` pairs.

    Raises:
        InvalidOptionError: when no region with enough valid pixels is found.
    """
    from geounet.io.read import Scene
    from geounet.models.foreign_onnx import input_scaler

    with Scene(scene_path, bands, default_bands=meta.bands, n_expected=meta.in_channels) as sc:
        scaler = input_scaler(meta, sc.dataset.dtypes[sc.bands[0] - 1])
        return open_scene_regions(sc, scaler, size, n, seed)


def open_scene_regions(sc: Any, scaler: Any, size: int, n: int,
                       seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` seeded regions of an open scene (see :func:`scene_regions`).

    Args:
        sc: An open :class:`~geounet.io.read.Scene` (on the grid to measure on).
        scaler: ``(data, valid) -> scaled``, the model's input scaler.
        size: Region size (px).
        n: Number of regions (up to ``4 n`` tries).
        seed: Seed of the positions.

    Returns:
        ``(scaled (bands, size, size) float32, valid (size, size) bool)`` pairs.

    Raises:
        InvalidOptionError: when no region with enough valid pixels is found.
    """
    from geounet.io.padding import read_scaled

    out = []
    inside = min(1.0, sc.width / size) * min(1.0, sc.height / size)
    for win in region_windows(sc.width, sc.height, size, 4 * n, seed):
        x, valid = read_scaled(sc, win, scaler)
        if valid.mean() >= 0.5 * inside:
            out.append((x, valid))
        if len(out) == n:
            break
    if not out:
        raise InvalidOptionError(
            f"scene {sc.path!r} has no {size} px window with half its pixels valid to "
            "measure the model's context on; pass another scene")
    return out


def measure_with(predict: PredictFn, meta: Any, scene: Any = None, tile: int | None = None,
                 regions: int = 4, seed: int = 0, percentile: float = 99.9,
                 tol_dp: float = 0.01, batch_size: int = 4,
                 bands: list[int] | None = None) -> ContextMeasure:
    """Measure a predictor of a model with metadata ``meta`` on a scene (or synthetic regions).

    Args:
        predict: The model as a predictor (:data:`geounet.context.PredictFn`).
        meta: The model's :class:`~geounet.models.metadata.ModelMetadata`.
        scene: A raster to read regions from; ``None`` uses :func:`synthetic_regions`.
        tile: Tile size (px; default: the model's).
        regions: Regions to measure (each runs 25 tiles).
        seed: Seed of the region positions.
        percentile: Percentile of ``|dp|`` (:func:`geounet.context.context_from_histogram`).
        tol_dp: Tolerance on ``|dp|``.
        batch_size: Tiles per call of ``predict``.
        bands: 1-based bands of ``scene`` (default: the model's).

    Returns:
        The :class:`~geounet.context.ContextMeasure`.

    Raises:
        InvalidOptionError: for a tile size the measurement cannot use, or a
            scene without valid regions.
    """
    tile = tile or meta.tile_size_px
    size = tile + 4 * measure_stride(tile, meta.pad_multiple)
    if scene is None:
        found = synthetic_regions(meta.in_channels, size, regions, seed)
    else:
        found = scene_regions(scene, meta, size, regions, seed, bands)
    name = "synthetic" if scene is None else Path(scene).name
    measure = measure_regions(found, predict, tile, meta.pad_multiple, percentile, tol_dp,
                              batch_size, scene=name)
    log.info("model %s: context %d px (%s, %d samples, measurable up to %d px)", meta.name,
             measure.context_px, "converged" if measure.converged else "NOT converged",
             measure.samples, measure.measurable_px)
    return measure


def measure_context(model: Any = None, scene: Any = None, *, tile_size_px: int | None = None,
                    config: Any = None, **kw: Any) -> ContextMeasure:
    """Measure a model file's context on a scene with any runtime (:func:`measure_with`).

    Args:
        model: A model file, bundled name or loaded model (default: the default model).
        scene: A raster to read regions from; ``None`` uses synthetic regions.
        tile_size_px: Tile size (px; default: the model's).
        config: :class:`~geounet.config.PredictConfig` (runtime, device, batch size).
        **kw: ``regions``, ``seed``, ``percentile``, ``tol_dp``, ``bands`` of
            :func:`measure_with`.

    Returns:
        The :class:`~geounet.context.ContextMeasure`.
    """
    from geounet.config import PredictConfig
    from geounet.models.modelfile import as_loaded
    from geounet.pipeline.predictors import make_predictor

    loaded = as_loaded(model, lazy=True)
    config = config or PredictConfig()
    tile = tile_size_px or loaded.metadata.tile_size_px
    predict = make_predictor(loaded, config, tile)
    return measure_with(predict, loaded.metadata, scene, tile,
                        batch_size=config.batch_size, **kw)


def measure_module(module: Any, meta: Any, scene: Any = None, **kw: Any) -> ContextMeasure:
    """Measure a torch module with metadata ``meta`` on the CPU (``geounet import``).

    Args:
        module: The ``torch.nn.Module``.
        meta: Its metadata.
        scene: A raster, or ``None`` for synthetic regions.
        **kw: Options of :func:`measure_with`.

    Returns:
        The :class:`~geounet.context.ContextMeasure`.
    """
    return measure_with(_cpu_predictor(module, meta), meta, scene, **kw)


def _cpu_predictor(module: Any, meta: Any) -> PredictFn:
    """The module in eval mode as an fp32, NCHW torch predictor on the CPU."""
    from geounet.pipeline.runtime_torch import Predictor

    module.eval()
    return Predictor(module, meta.binary, meta.pad_multiple, "cpu", precision="fp32",
                     channels_last=False)


def measure_trained(module: Any, meta: Any, scene: Any, scaler: Any, tile: int,
                    batch_size: int = 4, seed: int = 0, regions: int = 4,
                    name: str | None = None) -> ContextMeasure | None:
    """Measure a torch module just trained (run by ``geounet train``).

    Args:
        module: The ``torch.nn.Module`` (on the CPU).
        meta: Its metadata (binary or not, pad multiple).
        scene: An open training :class:`~geounet.io.read.Scene`, on the training grid.
        scaler: The model's input scaler.
        tile: Training tile size (px).
        batch_size: Tiles per forward pass.
        seed: Seed of the region positions.
        regions: Regions to measure.
        name: Scene name for the record.

    Returns:
        The measure, or ``None`` (logged) when the tile is too small to measure.
    """
    try:
        size = tile + 4 * measure_stride(tile, meta.pad_multiple)
    except InvalidOptionError as exc:
        log.warning("context not measured: %s", exc)
        return None
    found = open_scene_regions(scene, scaler, size, regions, seed)
    return measure_regions(found, _cpu_predictor(module, meta), tile, meta.pad_multiple,
                           batch_size=batch_size, scene=name)


def full_pass_probs(scene_path: Any, meta: Any, predict: PredictFn,
                    bands: list[int] | None = None) -> np.ndarray:
    """One forward pass over a whole scene (full context, no tiles): the reference of tilings.

    The scene is read and scaled as ``geounet predict`` reads it (nodata is 0
    after scaling) and padded at the bottom and right to a multiple of the
    model's ``pad_multiple`` by reflection, as tiles past the edge are, so the pooling grid
    starts where an aligned tile plan's does. Memory grows with the scene:
    for chips and benchmarks, not cities.

    Args:
        scene_path: The raster.
        meta: The model's metadata.
        predict: A predictor that takes the whole padded scene:
            ``(1, bands, H, W)`` -> ``(1, k, H, W)`` (the torch one does).
        bands: 1-based bands (default: the model's).

    Returns:
        ``(k, height, width)`` float32 probabilities.
    """
    from geounet.io.padding import read_scaled
    from geounet.io.read import Scene
    from geounet.models.foreign_onnx import input_scaler
    from geounet.pipeline.tiling import padded_size

    with Scene(scene_path, bands, default_bands=meta.bands, n_expected=meta.in_channels) as sc:
        h, w = sc.height, sc.width
        hp, wp = padded_size(h, meta.pad_multiple), padded_size(w, meta.pad_multiple)
        scaler = input_scaler(meta, sc.dataset.dtypes[sc.bands[0] - 1])
        x, _ = read_scaled(sc, Window(0, 0, wp, hp), scaler)
    return np.asarray(predict(x[None]))[0][:, :h, :w]
