"""The pipeline: the one module that knows the order of the stages.

1. read (:mod:`geounet.io.read`) -> 2. tile (:mod:`geounet.tiling`) ->
3. predict (:mod:`geounet.inference`) -> 4. stitch (:mod:`geounet.stitch`) ->
5. vectorise (:mod:`geounet.polygons`) -> 6. write (:mod:`geounet.io.write`).

The CLI, the QGIS script and other programs all call :func:`predict_scene`.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rasterio.windows import Window

from geounet.config import OutputConfig, PredictConfig, TilingConfig, VectorizeConfig
from geounet.errors import EmptySceneError, GeounetError
from geounet.io.atomic import OutputSet
from geounet.io.read import BandScaler, Scene, gdal_env
from geounet.progress import NullProgress, PrefixedProgress, Progress, check_cancelled
from geounet.tiling import TilePlan, plan_tiles
from geounet.polygons import CLASS_NODATA

log = logging.getLogger(__name__)


@dataclass
class PredictResult:
    """What :func:`predict_scene` produced.

    Attributes:
        footprints: Polygons in the scene's CRS (columns ``class_id``,
            ``class_name``, ``area_m2``, ``score``), or ``None`` unless kept
            (see ``keep_footprints``).
        n_polygons: Number of polygons produced.
        output: Vector file written, or ``None``.
        prob_out: Probability GeoTIFF written, or ``None``.
        mask_out: Class GeoTIFF written, or ``None``.
        crs: The scene's CRS.
        tiles: Number of tiles in the plan; ``tiles_predicted`` went through
            the model (all-nodata tiles are skipped).
        seconds: Wall time of the whole call.
        class_areas_m2: Total polygon area per class name in square metres
            (after the area filter), e.g. for land-cover statistics.
        probs: ``(k, height, width)`` float32 probabilities (NaN = nodata), with
            ``keep_arrays`` only.
        classes: ``(height, width)`` uint8 class ids (255 = nodata), with
            ``keep_arrays`` only.
    """

    footprints: object
    n_polygons: int
    output: Path | None
    prob_out: Path | None
    mask_out: Path | None
    crs: object
    tiles: int
    tiles_predicted: int
    seconds: float
    class_areas_m2: dict | None = None
    probs: np.ndarray | None = None
    classes: np.ndarray | None = None


def _as_model(model):
    from geounet.models.modelfile import LoadedModel, load_model

    if isinstance(model, LoadedModel):
        return model
    return load_model(model)


def predicted_tiles(scene: Scene, plan: TilePlan, scaler: BandScaler, predictor,
                    config: PredictConfig, progress: Progress):
    """Stages 1-3 for every tile: read and scale (on a background thread), predict.

    Yields:
        ``(window, probs)`` in plan order, ``probs`` ``(k, t, t)`` float32.
        Tiles whose pixels are all nodata are skipped.
    """
    from geounet._threads import background
    from geounet.io.read import iter_tile_batches

    windows = plan.windows
    total = len(windows)
    progress(0, total, "predict")

    def batches():
        return iter_tile_batches(scene.path, scene.bands, windows, scaler, config.batch_size)

    source = background(batches, config.prefetch) if config.prefetch else batches()
    reported = 0
    try:
        for wins, batch, n_read in source:
            check_cancelled(progress)
            if batch is not None:
                yield from zip(wins, predictor(batch))
            if n_read > reported:
                progress(n_read, total, "predict")
                reported = n_read
    finally:
        if hasattr(source, "close"):
            source.close()


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
    keep_footprints: bool | None = None,
    keep_arrays: bool = False,
    client=None,
) -> PredictResult:
    """Segment a scene and turn the result into polygons.

    Memory stays flat in the scene size: tiles are read by windows, blended in
    a strip one tile high, written to the rasters row strip by row strip, and
    polygonised strip by strip (polygons crossing strips are merged, not cut)
    while finished polygons stream to the output file.

    Args:
        scene_path: Any raster rasterio opens, with a CRS.
        output: Vector file (``.geojson``, ``.gpkg``, ``.fgb``, ``.parquet``)
            or ``None`` to only return the GeoDataFrame.
        model: A :class:`~geounet.models.modelfile.LoadedModel`, a model file
            path, a bundled model name, or ``None`` for the default model.
        bands: 1-based band indexes in model input order (default: the model's).
        tiling: Tile size and overlap in pixels (default: the model's).
        predict: Device, batch size, precision, prefetching.
        vectorize: Minimum area (m2), simplification (m), connectivity.
        outputs: Probability dtype and overwrite.
        threshold: Probability threshold of a binary model (default: the
            model's). Ignored by multi-class models (argmax).
        prob_out: Optional probability GeoTIFF: uint8 0-255 (nodata in an
            internal mask) or float32 0-1 (nodata NaN); one band for binary
            models, one per class otherwise. Scene CRS and transform.
        mask_out: Optional class GeoTIFF: uint8 class ids, nodata 255.
            Rasters are tiled with internal overviews, or COGs with
            ``outputs.cog``.
        progress: Progress/cancel reporter (see :mod:`geounet.progress`).
        keep_footprints: Also collect the polygons in memory for
            :attr:`PredictResult.footprints` (default: only when ``output`` is
            None; for very large scenes leave it off).
        keep_arrays: Also return the probability and class rasters as arrays
            (:attr:`PredictResult.probs`, :attr:`PredictResult.classes`); holds
            the scene in memory, so for small scenes only.
        client: A ``distributed.Client``: tiles are read and predicted on its
            workers in blocks of tile rows, and stitched here in plan order
            (same result as a local run; see :mod:`geounet.distributed`).

    Returns:
        A :class:`PredictResult`.

    Raises:
        GeounetError: any of its subclasses for bad input; nothing is left
            under the output names when it is raised.
    """
    from geounet import hooks
    from geounet.io.write import RowWriter, geotiff_profile, open_sink, to_cog, vector_format
    from geounet.inference import make_predictor
    from geounet.stitch import StripStitcher
    from geounet.polygons import StreamingVectorizer, empty_frame

    t_start = time.perf_counter()
    tiling = tiling or TilingConfig()
    predict = predict or PredictConfig()
    vectorize = vectorize or VectorizeConfig()
    outputs = outputs or OutputConfig()
    progress = progress or NullProgress()
    if keep_footprints is None:
        keep_footprints = output is None
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise GeounetError(f"threshold {threshold} is outside 0..1; pass e.g. --threshold 0.5")

    with gdal_env(), OutputSet(outputs.overwrite) as outset:
        vec_tmp = fmt = None
        if output is not None:
            fmt = vector_format(output)
            vec_tmp = outset.add(output)
        prob_tmp = outset.add(prob_out) if prob_out is not None else None
        mask_tmp = outset.add(mask_out) if mask_out is not None else None

        loaded = _as_model(model)
        meta = loaded.metadata
        scene = Scene(scene_path, bands, default_bands=meta.bands, n_expected=meta.in_channels)
        writers: list = []
        sink = None
        with scene:
            tile_px, overlap_px = tiling.resolve(meta.tile_size_px, meta.overlap_px)
            if loaded.module is None and tile_px != meta.tile_size_px:
                from geounet.errors import TilingError

                raise TilingError(
                    f"tile size {tile_px} px: ONNX model {str(loaded.path)!r} takes tiles of "
                    f"{meta.tile_size_px} px only; leave out --tile-size or re-export it"
                )
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
            k = meta.out_channels
            band_names = meta.classes[1:] if meta.binary else meta.classes
            try:
                class_writer = prob_writer = None
                # (raster being written, final temporary path, overview resampling)
                rasters: list[tuple] = []

                def raster_path(tmp, resampling):
                    path = outset.scratch(tmp) if outputs.cog else tmp
                    rasters.append((path, tmp, resampling))
                    return path

                if mask_tmp is not None:
                    import json

                    class_writer = RowWriter(
                        raster_path(mask_tmp, "nearest"),
                        geotiff_profile(scene.width, scene.height, 1, "uint8", scene.crs,
                                        scene.transform, nodata=CLASS_NODATA),
                        band_descriptions=["class_id"],
                        colormap=dict(enumerate(meta.colors())),
                        tags={"CLASS_NAMES": json.dumps(list(meta.classes)),
                              "MODEL": meta.name},
                    )
                    writers.append(class_writer)
                if prob_tmp is not None:
                    fdt = outputs.prob_dtype == "float32"
                    prob_writer = RowWriter(
                        raster_path(prob_tmp, "average"),
                        geotiff_profile(scene.width, scene.height, k, outputs.prob_dtype,
                                        scene.crs, scene.transform,
                                        nodata=float("nan") if fdt else None),
                        use_mask=not fdt,
                        band_descriptions=[f"p_{n}" for n in band_names],
                    )
                    writers.append(prob_writer)
                if vec_tmp is not None:
                    multi = vectorize.simplify_m > 0 or vectorize.connectivity == 8
                    sink = open_sink(vec_tmp, scene.crs, fmt, "Unknown" if multi else "Polygon")
                kept: list = []
                context = {"crs": scene.crs, "transform": scene.transform,
                           "class_names": list(meta.classes), "threshold": thr,
                           "scene": scene.path}
                hook_classes = hooks.has_implementations("geounet_postprocess_classes")
                hook_footprints = hooks.has_implementations("geounet_postprocess_footprints")

                areas: dict[str, float] = {}

                def on_polygons(gdf) -> None:
                    if hook_footprints:
                        gdf = hooks.postprocess_footprints(gdf, context)
                    for name, a in gdf.groupby("class_name")["area_m2"].sum().items():
                        areas[name] = areas.get(name, 0.0) + float(a)
                    if sink is not None:
                        sink.write(gdf)
                    if keep_footprints:
                        kept.append(gdf)

                vectorizer = StreamingVectorizer(
                    scene.width, scene.transform, scene.crs, meta.classes, on_polygons,
                    vectorize, background=meta.background_class,
                )
                state = {"valid_pixels": 0}
                arrays = ((np.zeros((k, scene.height, scene.width), np.float32),
                           np.full((scene.height, scene.width), CLASS_NODATA, np.uint8))
                          if keep_arrays else None)

                def emit_rows(row_off: int, classes: np.ndarray, probs: np.ndarray,
                              valid: np.ndarray) -> None:
                    """Stages 5-6 for final rows: write the rasters, vectorise."""
                    if class_writer is not None:
                        class_writer.write(row_off, classes[None])
                    if prob_writer is not None:
                        if outputs.prob_dtype == "uint8":
                            p = np.rint(probs * 255).astype(np.uint8)
                            p[:, ~valid] = 0
                        else:
                            p = probs.copy()
                            p[:, ~valid] = np.nan
                        prob_writer.write(row_off, p, valid)
                    vectorizer.add_rows(row_off, classes, probs)
                    if arrays is not None:
                        n = probs.shape[1]
                        arrays[0][:, row_off : row_off + n] = np.where(valid, probs, np.nan)
                        arrays[1][row_off : row_off + n] = classes

                sieve = None
                if vectorize.sieve_m2 > 0:
                    from geounet.sieve import StripSieve

                    size_px = int(np.ceil(vectorize.sieve_m2 / scene.pixel_area_m2()))
                    log.info("minimum mapping unit %.6g m2 = %d px", vectorize.sieve_m2, size_px)
                    sieve = StripSieve(size_px, vectorize.connectivity, emit_rows,
                                       height=scene.height)

                def on_rows(row_off: int, probs: np.ndarray, covered: np.ndarray) -> None:
                    window = Window(0, row_off, scene.width, probs.shape[1])
                    valid = scene.read_valid(window) & covered
                    state["valid_pixels"] += int(valid.sum())
                    if meta.binary:
                        classes = (probs[0] >= thr).astype(np.uint8)
                    else:
                        classes = probs.argmax(axis=0).astype(np.uint8)
                    classes[~valid] = CLASS_NODATA
                    if hook_classes:
                        classes = hooks.postprocess_classes(classes, probs, row_off, context)
                        classes[~valid] = CLASS_NODATA
                    if sieve is not None:
                        sieve.add(row_off, classes, probs, valid)
                    else:
                        emit_rows(row_off, classes, probs, valid)

                stitcher = StripStitcher(plan, k, on_rows)
                n_pred = 0
                if client is not None:  # the workers read, scale and predict
                    from geounet.distributed import distributed_tiles, model_spec_of

                    tiles = distributed_tiles(client, scene, plan, model_spec_of(loaded), predict,
                                              progress)
                else:
                    tiles = predicted_tiles(scene, plan,
                                            BandScaler(meta.band_mean, meta.band_std),
                                            make_predictor(loaded, predict), predict, progress)
                for window, probs in tiles:
                    stitcher.add(window, probs)
                    n_pred += 1
                stitcher.finish()
                if sieve is not None:
                    sieve.finish()
                vectorizer.finish()
                if state["valid_pixels"] == 0:
                    raise EmptySceneError(
                        f"every pixel of scene {scene.path!r} (bands {scene.bands}) is nodata; "
                        "check the nodata value or choose other --bands"
                    )
                check_cancelled(progress)
                for w, (path, final, resampling) in zip(writers, rasters):
                    w.close(overviews=not outputs.cog, resampling=resampling)
                    if outputs.cog:
                        to_cog(path, final, resampling)
                writers.clear()
                if sink is not None:
                    sink.close()
                    sink = None
            finally:
                for w in writers:
                    w.close(overviews=False)
                if sink is not None:
                    sink.abort()
            log.info("%d polygons", vectorizer.count)
            if areas:
                log.info("area by class: %s", ", ".join(
                    f"{n} {a / 1e4:.2f} ha" for n, a in sorted(areas.items(), key=lambda x: -x[1])))
            written = set(outset.commit())

    def _final(p):
        return Path(p).absolute() if p is not None and Path(p).absolute() in written else None

    import pandas as pd

    footprints = None
    if keep_footprints:
        footprints = (pd.concat(kept, ignore_index=True) if kept else empty_frame(scene.crs))
    return PredictResult(
        footprints=footprints,
        n_polygons=vectorizer.count,
        output=_final(output),
        prob_out=_final(prob_out),
        mask_out=_final(mask_out),
        crs=scene.crs,
        tiles=len(plan),
        tiles_predicted=n_pred,
        seconds=time.perf_counter() - t_start,
        class_areas_m2=dict(areas),
        probs=arrays[0] if arrays is not None else None,
        classes=arrays[1] if arrays is not None else None,
    )


predict = predict_scene
"""``geounet.predict``: the same function as :func:`predict_scene`."""


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
        predictor: A :class:`~geounet.inference.Predictor`.
        scaled: ``(c, h, w)`` float32 input, already scaled.
        channels: Output channels ``k`` of the model.
        tile_size_px: Tile size in pixels.
        overlap_px: Overlap in pixels.
        batch_size: Tiles per forward pass.

    Returns:
        ``(k, h, w)`` float32 probabilities.
    """
    from geounet.inference import batched
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


RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".jp2", ".img")


def expand_scenes(items) -> list[Path]:
    """Expand scene arguments: files, folders (their rasters) and glob patterns.

    Args:
        items: Paths, folder paths or patterns such as ``tiles/*.tif``.

    Returns:
        Scene paths in argument order, folders and patterns sorted, no duplicates.

    Raises:
        InputNotFoundError: for a path or pattern that matches nothing.
    """
    import glob

    from geounet.errors import InputNotFoundError

    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.suffix.lower() in RASTER_SUFFIXES)
        elif p.exists():
            found = [p]
        elif any(ch in str(item) for ch in "*?["):
            found = sorted(Path(q) for q in glob.glob(str(item)))
        else:
            found = [p]  # reported as missing by the reader, with its own message
        if not found:
            raise InputNotFoundError(
                f"{str(item)!r} matches no raster (.tif, .tiff, .vrt, .jp2, .img); check the "
                "folder or pattern"
            )
        for q in found:
            if q not in out:
                out.append(q)
    return out


def output_for(scene: Path, out_dir: Path, suffix: str) -> Path:
    """``OUT_DIR/<scene stem><suffix>`` (e.g. ``.geojson`` or ``_classes.tif``)."""
    return Path(out_dir) / f"{Path(scene).stem}{suffix}"


def predict_scenes(scenes, out_dir, fmt: str = "geojson", *, model=None,
                   prob_out_dir=None, mask_out_dir=None, progress: Progress | None = None,
                   client=None, **kwargs) -> list[PredictResult]:
    """Run :func:`predict_scene` over many scenes with one loaded model.

    Args:
        scenes: Scene paths, folders or glob patterns (see :func:`expand_scenes`).
        out_dir: Existing folder for the vector outputs ``<stem>.<fmt>``.
        fmt: ``geojson``, ``gpkg``, ``fgb`` or ``parquet``.
        model: As in :func:`predict_scene`; loaded once.
        prob_out_dir: Folder for ``<stem>_prob.tif`` files, or None.
        mask_out_dir: Folder for ``<stem>_classes.tif`` files, or None.
        progress: Reporter; stages are named ``predict <stem>`` (``scenes``
            with a client).
        client: A ``distributed.Client``: each scene becomes one task on its
            workers (paths must be reachable from them).
        **kwargs: Other :func:`predict_scene` options.

    Returns:
        One :class:`PredictResult` per scene, in order.

    Raises:
        OutputNotWritableError: if a folder does not exist.
        GeounetError: the first scene's error stops the run (finished scenes'
            outputs are complete and kept).
    """
    from geounet.errors import OutputNotWritableError

    for d in (out_dir, prob_out_dir, mask_out_dir):
        if d is not None and not Path(d).is_dir():
            raise OutputNotWritableError(
                f"output folder {str(d)!r} does not exist; create it first"
            )
    paths = expand_scenes(scenes)
    progress = progress or NullProgress()
    jobs = [{
        "scene": path,
        "output": output_for(path, out_dir, f".{fmt.lstrip('.')}"),
        "prob_out": output_for(path, prob_out_dir, "_prob.tif") if prob_out_dir else None,
        "mask_out": output_for(path, mask_out_dir, "_classes.tif") if mask_out_dir else None,
    } for path in paths]
    if client is not None:
        from geounet.distributed import map_scenes, model_spec_of

        return map_scenes(client, jobs, model_spec_of(model), progress, **kwargs)
    loaded = _as_model(model)
    results = []
    for job in jobs:
        results.append(predict_scene(
            job["scene"], job["output"], model=loaded, prob_out=job["prob_out"],
            mask_out=job["mask_out"], progress=PrefixedProgress(progress, job["scene"].stem),
            **kwargs,
        ))
    return results
