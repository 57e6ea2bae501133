"""One scene through the stages: :class:`SceneRun`, and :func:`predict_scene` over it.

A run is: **open** (check the outputs, load the model, open the scene, plan the
tiles, build the strip stages) -> **feed** predicted tiles from a tile source
into the stitcher -> **commit** (flush every stage, finalise the files, rename
them into place) -> :class:`PredictResult`. Any failure, at any step, aborts
every stage and removes every temporary file, so nothing is left that looks
complete. The stages::

    tile source -> StripStitcher -> Classifier -> [StripSieve] -> Fanout
                                      -> class RasterSink, probability RasterSink,
                                         PolygonSink (vectorise, post-process, write),
                                         ArrayCollector

The CLI, ``rio geounet``, the QGIS script and the Python API all end here.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from geounet.config import (
    OutputConfig,
    PredictConfig,
    ResampleConfig,
    RunOptions,
    TilingConfig,
    VectorizeConfig,
)
from geounet.errors import TilingError
from geounet.footprints.checks import require_libraries
from geounet.hooks import HookChain
from geounet.io.atomic import OutputSet
from geounet.io.read import Scene, gdal_env
from geounet.io.regrid import ModelGrid
from geounet.io.vector import empty_frame
from geounet.io.writers import vector_format
from geounet.models.modelfile import LoadedModel, as_loaded
from geounet.pipeline.classify import Classifier
from geounet.pipeline.resample import choose_grid
from geounet.pipeline.sieve import StripSieve
from geounet.pipeline.sinks import ArrayCollector, PolygonSink, output_rasters
from geounet.pipeline.sources import LocalTileSource, Tile, TileSource
from geounet.pipeline.stitch import StripStitcher
from geounet.pipeline.strips import Fanout, Strip, StripStage
from geounet.pipeline.tiling import TilePlan, plan_tiles, warn_short_overlap
from geounet.progress import NullProgress, Progress, check_cancelled

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


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

    footprints: Any
    n_polygons: int
    output: Path | None
    prob_out: Path | None
    mask_out: Path | None
    crs: Any
    tiles: int
    tiles_predicted: int
    seconds: float
    class_areas_m2: dict[str, float] | None = None
    probs: np.ndarray | None = None
    classes: np.ndarray | None = None


class SceneRun:
    """One scene through the stages (see the module docstring).

    Use it as a context manager, or call :meth:`open`, then :meth:`feed`,
    then :meth:`commit` (or :meth:`abort`)::

        with SceneRun("scene.tif", "out.gpkg") as run:
            run.feed(run.tiles(LocalTileSource()))
            result = run.commit()

    Args:
        scene_path: Any raster rasterio opens, with a CRS.
        output: Vector file (``.geojson``, ``.gpkg``, ``.fgb``, ``.parquet`` or a
            plugin's extension), or ``None``.
        model: A :class:`~geounet.models.modelfile.LoadedModel`, a model file
            path, a bundled model name, or ``None`` for the default model.
        prob_out: Probability GeoTIFF to write, or ``None``.
        mask_out: Class GeoTIFF to write, or ``None``.
        options: Every stage's options.
        progress: Progress/cancel reporter (see :mod:`geounet.progress`).
    """

    def __init__(self, scene_path: PathLike, output: PathLike | None = None, *,
                 model: Any = None, prob_out: PathLike | None = None,
                 mask_out: PathLike | None = None, options: RunOptions | None = None,
                 progress: Progress | None = None) -> None:
        self.t_start = time.perf_counter()
        self.scene_path = scene_path
        self.paths = {"output": output, "prob_out": prob_out, "mask_out": mask_out}
        self.model_arg = model
        self.options = options or RunOptions()
        self.progress = progress or NullProgress()
        self._stack = ExitStack()
        self._head: StripStage | None = None
        self.tiles_predicted = 0

    # ---------------------------------------------------------------- open
    def open(self) -> SceneRun:
        """Check the outputs, load the model, open the scene, plan and build the stages.

        Returns:
            ``self``.

        Raises:
            GeounetError: any of its subclasses for bad input (nothing is
                left under the output names).
        """
        try:
            self._stack.enter_context(gdal_env())
            self.outset = self._stack.enter_context(OutputSet(self.options.outputs.overwrite))
            temps = self._register_outputs()
            vec = self.options.vectorize
            require_libraries(*[step for step, on in (("split_touching", vec.split_touching),
                                                      ("regularize", vec.regularize)) if on])
            self.model: LoadedModel = as_loaded(self.model_arg, lazy=True)
            meta = self.model.metadata
            self.scene = self._stack.enter_context(
                Scene(self.scene_path, self.options.bands, default_bands=meta.bands,
                      n_expected=meta.in_channels))
            self.grid: ModelGrid | None = choose_grid(self.scene, meta, self.options.resample)
            if self.grid is not None:
                self.scene.use_grid(self.grid)
            # the model grid whose rasters go back to the scene's grid
            self._back = self.grid if self.options.resample.output_grid == "scene" else None
            self.plan = self._plan()
            self._build_stages(temps)
        except BaseException:
            self.abort()
            raise
        return self

    def _register_outputs(self) -> dict[str, Path | None]:
        """Temporary paths of the outputs (the vector format is checked first)."""
        if self.paths["output"] is not None:
            vector_format(self.paths["output"])
        return {k: (self.outset.add(p) if p is not None else None) for k, p in self.paths.items()}

    def _plan(self) -> TilePlan:
        meta, scene = self.model.metadata, self.scene
        tile_px, overlap_px = self.options.tiling.resolve(meta.tile_size_px, meta.overlap_px)
        if self.model.format == "onnx" and tile_px != meta.tile_size_px:
            raise TilingError(
                f"tile size {tile_px} px: ONNX model {str(self.model.path)!r} takes tiles of "
                f"{meta.tile_size_px} px only; leave out --tile-size or re-export it"
            )
        context = meta.context_px or 0
        if self.options.tiling.overlap_px is not None:
            warn_short_overlap(overlap_px, context, meta.name)
        plan = plan_tiles(scene.width, scene.height, tile_px, overlap_px,
                          align_px=meta.pad_multiple, context_px=context)
        log.info(
            "%s: %dx%d px, bands %s, %d tiles of %d px (overlap %d px, aligned to %d px, "
            "blending margin %d px), model %s", scene.path, scene.width, scene.height,
            scene.bands, len(plan), tile_px, plan.overlap_px, plan.align_px, plan.margin_px,
            meta.name,
        )
        return plan

    @property
    def threshold(self) -> float:
        """The binary threshold in use (the option, else the model's)."""
        t = self.options.threshold
        return self.model.metadata.threshold if t is None else t

    def _build_stages(self, temps: dict[str, Path | None]) -> None:
        meta, scene, opts = self.model.metadata, self.scene, self.options
        context = {"crs": scene.crs, "transform": scene.transform,
                   "class_names": list(meta.classes), "threshold": self.threshold,
                   "scene": scene.path, "vectorize": opts.vectorize}
        sinks: list[StripStage] = output_rasters(temps, self.outset.scratch, scene, meta,
                                                 opts.outputs, self._back)
        keep = opts.keep_footprints
        self.polygons = PolygonSink(
            scene, meta, opts.vectorize,
            HookChain("geounet_postprocess_footprints", "footprints"), context,
            temps["output"], keep=self.paths["output"] is None if keep is None else keep)
        sinks.append(self.polygons)
        self.arrays = (ArrayCollector(meta.out_channels, scene.height, scene.width,
                                      (self._back, scene) if self._back else None)
                       if opts.keep_arrays else None)
        if self.arrays is not None:
            sinks.append(self.arrays)
        head: StripStage = Fanout(sinks)
        if opts.vectorize.sieve_m2 > 0:
            size_px = int(np.ceil(opts.vectorize.sieve_m2 / scene.pixel_area_m2()))
            log.info("minimum mapping unit %.6g m2 = %d px", opts.vectorize.sieve_m2, size_px)
            head = StripSieve(size_px, opts.vectorize.connectivity, head, height=scene.height)
        hook = HookChain("geounet_postprocess_classes", "classes")
        self.classifier = Classifier(scene, meta.binary, self.threshold, head,
                                     hook if len(hook) else None, context)
        self._head = self.classifier
        self.stitcher = StripStitcher(self.plan, meta.out_channels, self._on_stitched)

    def _on_stitched(self, row_off: int, probs: np.ndarray, covered: np.ndarray) -> None:
        self.classifier.add(Strip(row_off, probs, covered))

    # ---------------------------------------------------------------- feed
    def tiles(self, source: TileSource) -> Any:
        """The predicted tiles of this run's plan from ``source`` (see :class:`TileSource`).

        Args:
            source: A tile source (local, Dask...).

        Returns:
            An iterator of ``(window, probs)`` in plan order.
        """
        return source.tiles(self.scene, self.plan, self.model, self.options.predict,
                            self.progress)

    def feed(self, tiles: Any) -> None:
        """Stitch predicted tiles; finished strips go through every stage at once.

        Args:
            tiles: Iterable of ``(window, probs)`` in plan order, ``probs``
                ``(k, t, t)`` float32.
        """
        tile: Tile
        for tile in tiles:
            self.stitcher.add(*tile)
            self.tiles_predicted += 1

    # ---------------------------------------------------------------- commit
    def commit(self) -> PredictResult:
        """Flush every stage, finalise the files and rename them into place.

        Returns:
            The :class:`PredictResult`.

        Raises:
            EmptySceneError: if every pixel was nodata.
            CancelledError: if the progress reporter asked to cancel.
        """
        assert self._head is not None, "open() the run first"
        self.stitcher.finish()
        check_cancelled(self.progress)
        self._head.finish()
        self._head = None
        log.info("%d polygons", self.polygons.count)
        areas = self.polygons.areas_m2
        if areas:
            log.info("area by class: %s", ", ".join(
                f"{n} {a / 1e4:.2f} ha" for n, a in sorted(areas.items(), key=lambda x: -x[1])))
        written = {p.absolute() for p in self.outset.commit()}
        self._stack.close()
        return self._result(written)

    def _result(self, written: set[Path]) -> PredictResult:
        import pandas as pd

        def final(key: str) -> Path | None:
            p = self.paths[key]
            return Path(p).absolute() if p is not None and Path(p).absolute() in written else None

        footprints = None
        if self.polygons.keep:
            footprints = (pd.concat(self.polygons.batches, ignore_index=True)
                          if self.polygons.batches else empty_frame(self.scene.crs))
        return PredictResult(
            footprints=footprints, n_polygons=self.polygons.count, output=final("output"),
            prob_out=final("prob_out"), mask_out=final("mask_out"), crs=self.scene.crs,
            tiles=len(self.plan), tiles_predicted=self.tiles_predicted,
            seconds=time.perf_counter() - self.t_start,
            class_areas_m2=dict(self.polygons.areas_m2),
            probs=self.arrays.probs if self.arrays is not None else None,
            classes=self.arrays.classes if self.arrays is not None else None,
        )

    def abort(self) -> None:
        """Abort every stage and remove every temporary file (safe to call twice)."""
        try:
            if self._head is not None:
                self._head.abort()
        finally:
            self._head = None
            self._stack.close()

    def __enter__(self) -> SceneRun:
        return self.open()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.abort()


def predict_scene(
    scene_path: PathLike,
    output: PathLike | None = None,
    *,
    model: Any = None,
    bands: list[int] | None = None,
    tiling: TilingConfig | None = None,
    predict: PredictConfig | None = None,
    vectorize: VectorizeConfig | None = None,
    outputs: OutputConfig | None = None,
    threshold: float | None = None,
    prob_out: PathLike | None = None,
    mask_out: PathLike | None = None,
    progress: Progress | None = None,
    keep_footprints: bool | None = None,
    keep_arrays: bool = False,
    source: TileSource | None = None,
    resample: ResampleConfig | str | None = None,
) -> PredictResult:
    """Segment a scene and turn the result into polygons (a :class:`SceneRun`).

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
        keep_arrays: Also return the probability and class rasters as arrays;
            holds the scene in memory, so for small scenes only.
        source: Where predicted tiles come from (default
            :class:`~geounet.pipeline.sources.LocalTileSource`; a
            :class:`geounet.distributed.DaskTileSource` spreads them over a
            Dask cluster, with the same result).
        resample: Ground resolution (:class:`~geounet.config.ResampleConfig`,
            or its mode ``"auto"``/``"off"``): by default a scene whose GSD
            differs from the model's by more than 10 % is read at the model's
            GSD, and the rasters come back on the scene's grid.

    Returns:
        A :class:`PredictResult`.

    Raises:
        GeounetError: any of its subclasses for bad input; nothing is left
            under the output names when it is raised.
    """
    if not isinstance(resample, ResampleConfig):
        resample = ResampleConfig() if resample is None else ResampleConfig(mode=resample)
    options = RunOptions(bands, tiling or TilingConfig(), predict or PredictConfig(),
                         vectorize or VectorizeConfig(), outputs or OutputConfig(), threshold,
                         keep_footprints, keep_arrays, resample)
    with SceneRun(scene_path, output, model=model, prob_out=prob_out, mask_out=mask_out,
                  options=options, progress=progress) as run:
        run.feed(run.tiles(source or LocalTileSource()))
        return run.commit()
