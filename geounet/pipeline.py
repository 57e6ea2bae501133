"""The pipeline: the one module that knows the order of the stages.

1. read (:mod:`geounet.io.read`) -> 2. tile (:mod:`geounet.tiling`) ->
3. predict (:mod:`geounet.predict`) -> 4. stitch (:mod:`geounet.stitch`) ->
5. vectorise (:mod:`geounet.vectorize`) -> 6. write (:mod:`geounet.io.write`).

The CLI, the QGIS script and other programs all call :func:`predict_scene`.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rasterio.windows import Window

from geounet.config import OutputConfig, PredictConfig, TilingConfig, VectorizeConfig
from geounet.errors import EmptySceneError, GeounetError
from geounet.io.atomic import OutputSet
from geounet.io.read import BandScaler, Scene
from geounet.progress import NullProgress, Progress, check_cancelled
from geounet.tiling import TilePlan, plan_tiles
from geounet.vectorize import CLASS_NODATA

log = logging.getLogger(__name__)


@dataclass
class PredictResult:
    """What :func:`predict_scene` produced.

    Attributes:
        footprints: Polygons in the scene's CRS (columns ``class_id``,
            ``class_name``, ``area_m2``, ``score``).
        output: Vector file written, or ``None``.
        prob_out: Probability GeoTIFF written, or ``None``.
        mask_out: Class GeoTIFF written, or ``None``.
        crs: The scene's CRS.
        tiles: Number of tiles in the plan; ``tiles_predicted`` went through
            the model (all-nodata tiles are skipped).
        seconds: Wall time of the whole call.
    """

    footprints: object
    output: Path | None
    prob_out: Path | None
    mask_out: Path | None
    crs: object
    tiles: int
    tiles_predicted: int
    seconds: float
    timings: dict = field(default_factory=dict)


def _as_model(model):
    from geounet.models.modelfile import LoadedModel, load_model

    if isinstance(model, LoadedModel):
        return model
    return load_model(model)


def run_tiles(scene: Scene, plan: TilePlan, scaler: BandScaler, predictor, batch_size: int,
              progress: Progress):
    """Read, scale and predict every tile that has valid pixels.

    Yields:
        ``(window, probs)`` in plan order, ``probs`` ``(k, t, t)`` float32.
        Tiles whose pixels are all nodata are skipped.
    """
    windows = plan.windows
    total = len(windows)
    progress(0, total, "predict")
    done = 0
    batch_w: list[Window] = []
    batch_x: list[np.ndarray] = []

    def flush():
        probs = predictor(np.stack(batch_x))
        out = list(zip(batch_w, probs))
        batch_w.clear()
        batch_x.clear()
        return out

    for window in windows:
        data, valid = scene.read(window)
        done += 1
        if valid.any():
            batch_w.append(window)
            batch_x.append(scaler(data, valid))
        if len(batch_w) == batch_size:
            check_cancelled(progress)
            yield from flush()
            progress(done, total, "predict")
    if batch_w:
        check_cancelled(progress)
        yield from flush()
    progress(total, total, "predict")


def predict_scene(
    scene_path: str | os.PathLike,
    output: str | os.PathLike | None = None,
    *,
    model=None,
    bands: list[int] | None = None,
    tiling: TilingConfig | None = None,
    predict: PredictConfig | None = None,
    vectorize: VectorizeConfig | None = None,
    outputs: OutputConfig | None = None,
    threshold: float | None = None,
    prob_out: str | os.PathLike | None = None,
    mask_out: str | os.PathLike | None = None,
    progress: Progress | None = None,
) -> PredictResult:
    """Segment a scene and turn the result into polygons.

    Args:
        scene_path: Any raster rasterio opens, with a CRS.
        output: Vector file (``.geojson``, ``.gpkg``, ``.fgb``, ``.parquet``)
            or ``None`` to only return the GeoDataFrame.
        model: A :class:`~geounet.models.modelfile.LoadedModel`, a model file
            path, a bundled model name, or ``None`` for the default model.
        bands: 1-based band indexes in model input order (default: the model's).
        tiling: Tile size and overlap in pixels (default: the model's).
        predict: Device, batch size, mixed precision.
        vectorize: Minimum area (m2), simplification (m), connectivity.
        outputs: Probability dtype and overwrite.
        threshold: Probability threshold of a binary model (default: the
            model's). Ignored by multi-class models (argmax).
        prob_out: Optional probability GeoTIFF: uint8 0-255 (nodata in an
            internal mask) or float32 0-1 (nodata NaN); one band for binary
            models, one per class otherwise. Scene CRS and transform.
        mask_out: Optional class GeoTIFF: uint8 class ids, nodata 255.
        progress: Progress/cancel reporter (see :mod:`geounet.progress`).

    Returns:
        A :class:`PredictResult`.

    Raises:
        GeounetError: any of its subclasses for bad input; nothing is left
            under the output names when it is raised.
    """
    from geounet.io.write import RowWriter, geotiff_profile, vector_format, write_vector
    from geounet.predict import Predictor
    from geounet.vectorize import empty_frame
    from geounet.vectorize import vectorize as vectorize_classes

    t_start = time.perf_counter()
    tiling = tiling or TilingConfig()
    predict = predict or PredictConfig()
    vectorize = vectorize or VectorizeConfig()
    outputs = outputs or OutputConfig()
    progress = progress or NullProgress()
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise GeounetError(f"threshold {threshold} is outside 0..1; pass e.g. --threshold 0.5")

    with OutputSet(outputs.overwrite) as outset:
        vec_tmp = None
        if output is not None:
            fmt = vector_format(output)
            vec_tmp = outset.add(output)
        prob_tmp = outset.add(prob_out) if prob_out is not None else None
        mask_tmp = outset.add(mask_out) if mask_out is not None else None

        loaded = _as_model(model)
        meta = loaded.metadata
        scene = Scene(scene_path, bands, default_bands=meta.bands, n_expected=meta.in_channels)
        with scene, tempfile.TemporaryDirectory(prefix="geounet-") as workdir:
            tile_px, overlap_px = tiling.resolve(meta.tile_size_px, meta.overlap_px)
            plan = plan_tiles(scene.width, scene.height, tile_px, overlap_px)
            if meta.gsd_m and abs(scene.gsd_m() / meta.gsd_m - 1) > 0.25:
                log.warning(
                    "scene GSD %.3g m differs from the model's %.3g m; results may suffer "
                    "(resample the scene to the model's GSD)", scene.gsd_m(), meta.gsd_m,
                )
            thr = meta.threshold if threshold is None else threshold
            log.info(
                "%s: %dx%d px, bands %s, %d tiles of %d px (overlap %d px), model %s",
                scene.path, scene.width, scene.height, scene.bands, len(plan), tile_px,
                overlap_px, meta.name,
            )
            predictor = Predictor(
                loaded.module, meta.binary, meta.pad_multiple, predict.device, predict.amp
            )
            k = meta.out_channels
            class_path = mask_tmp or Path(workdir) / "classes.tif"
            probs_path = prob_tmp or Path(workdir) / "probs.tif"
            prob_dtype = outputs.prob_dtype if prob_tmp else "uint8"
            names = meta.classes[1:] if meta.binary else meta.classes
            class_writer = RowWriter(
                class_path,
                geotiff_profile(scene.width, scene.height, 1, "uint8", scene.crs,
                                scene.transform, nodata=CLASS_NODATA),
                band_descriptions=["class_id"],
            )
            prob_writer = RowWriter(
                probs_path,
                geotiff_profile(scene.width, scene.height, k, prob_dtype, scene.crs,
                                scene.transform,
                                nodata=float("nan") if prob_dtype == "float32" else None),
                use_mask=prob_dtype == "uint8",
                band_descriptions=[f"p_{n}" for n in names],
            )
            state = {"valid_pixels": 0}

            def on_rows(row_off: int, probs: np.ndarray, covered: np.ndarray) -> None:
                window = Window(0, row_off, scene.width, probs.shape[1])
                valid = scene.read_valid(window) & covered
                state["valid_pixels"] += int(valid.sum())
                if meta.binary:
                    classes = (probs[0] >= thr).astype(np.uint8)
                else:
                    classes = probs.argmax(axis=0).astype(np.uint8)
                classes[~valid] = CLASS_NODATA
                class_writer.write(row_off, classes[None])
                if prob_dtype == "uint8":
                    p = np.rint(probs * 255).astype(np.uint8)
                    p[:, ~valid] = 0
                else:
                    p = probs.copy()
                    p[:, ~valid] = np.nan
                prob_writer.write(row_off, p, valid)

            from geounet.stitch import StripStitcher

            t0 = time.perf_counter()
            n_pred = 0
            try:
                stitcher = StripStitcher(plan, k, on_rows)
                for window, probs in run_tiles(
                    scene, plan, BandScaler(meta.band_mean, meta.band_std), predictor,
                    predict.batch_size, progress,
                ):
                    stitcher.add(window, probs)
                    n_pred += 1
                stitcher.finish()
            finally:
                class_writer.close()
                prob_writer.close()
            t_predict = time.perf_counter() - t0
            if state["valid_pixels"] == 0:
                raise EmptySceneError(
                    f"every pixel of scene {scene.path!r} (bands {scene.bands}) is nodata; "
                    "check the nodata value or choose other --bands"
                )

            t0 = time.perf_counter()
            progress(0, 1, "vectorize")
            check_cancelled(progress)
            gdf = _vectorize_rasters(class_path, probs_path, names_for(meta), vectorize,
                                     vectorize_classes)
            progress(1, 1, "vectorize")
            t_vec = time.perf_counter() - t0
            if gdf is None:
                gdf = empty_frame(scene.crs)
            log.info("%d polygons", len(gdf))
            if vec_tmp is not None:
                write_vector(gdf, vec_tmp, fmt)
            written = set(outset.commit())

    def _final(p):
        return Path(p).absolute() if p is not None and Path(p).absolute() in written else None

    return PredictResult(
        footprints=gdf,
        output=_final(output),
        prob_out=_final(prob_out),
        mask_out=_final(mask_out),
        crs=scene.crs,
        tiles=len(plan),
        tiles_predicted=n_pred,
        seconds=time.perf_counter() - t_start,
        timings={"predict_s": t_predict, "vectorize_s": t_vec},
    )


def names_for(meta) -> list[str]:
    """Class names by class id of a model's class raster."""
    return list(meta.classes)


def _vectorize_rasters(class_path, probs_path, class_names, config, vectorize_fn):
    """Read the class and probability rasters and polygonise them."""
    import rasterio

    with rasterio.open(class_path) as cds, rasterio.open(probs_path) as pds:
        classes = cds.read(1)
        probs = pds.read(out_dtype="float32")
        if pds.dtypes[0] == "uint8":
            probs /= 255.0
        return vectorize_fn(
            classes, cds.transform, cds.crs, class_names, probs=np.nan_to_num(probs),
            config=config,
        )


def predict_array(
    predictor,
    scaled: np.ndarray,
    channels: int,
    tile_size_px: int,
    overlap_px: int,
    batch_size: int = 4,
) -> np.ndarray:
    """Tile, predict and stitch an in-memory scaled array (stages 2-4).

    Used for validation during training; the scene must fit in memory.

    Args:
        predictor: A :class:`~geounet.predict.Predictor`.
        scaled: ``(c, h, w)`` float32 input, already scaled.
        channels: Output channels ``k`` of the model.
        tile_size_px: Tile size in pixels.
        overlap_px: Overlap in pixels.
        batch_size: Tiles per forward pass.

    Returns:
        ``(k, h, w)`` float32 probabilities.
    """
    from geounet.predict import batched
    from geounet.stitch import stitch_to_array

    c, h, w = scaled.shape
    plan = plan_tiles(w, h, tile_size_px, overlap_px)
    t = plan.tile_size_px

    def crop(win: Window) -> np.ndarray:
        r0, c0 = int(win.row_off), int(win.col_off)
        x = scaled[:, r0 : r0 + t, c0 : c0 + t]
        if x.shape[1:] != (t, t):
            x = np.pad(x, ((0, 0), (0, t - x.shape[1]), (0, t - x.shape[2])))
        return x

    def tiles():
        for group in batched(plan.windows, batch_size):
            probs = predictor(np.stack([crop(wi) for wi in group]))
            yield from zip(group, probs)

    return stitch_to_array(plan, channels, tiles())[0]
