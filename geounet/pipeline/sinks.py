"""Stage 7 - write: the strip stages that end a run.

* :class:`RasterSink`: one GeoTIFF (class raster or probability raster) written
  strip by strip, with overviews or as a COG at :meth:`~RasterSink.finish`.
* :class:`PolygonSink`: the streaming vectoriser, geounet's own and plugins'
  footprint post-processing (one :class:`~geounet.hooks.HookChain`), the area
  statistics, and the vector writer chosen by extension.
* :class:`ArrayCollector`: the whole scene's probabilities and classes in
  memory (``keep_arrays``; small scenes only).
* :class:`BackToScene`: a raster written on the model-GSD grid of a resampled
  run (:mod:`geounet.io.regrid`), warped back onto the scene's own grid.

:func:`output_rasters` makes a run's raster sinks.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.windows import Window

from geounet.config import OutputConfig, VectorizeConfig
from geounet.constants import CLASS_NODATA
from geounet.hooks import HookChain
from geounet.io.rasters import RowWriter, geotiff_profile, to_cog
from geounet.io.read import Scene
from geounet.io.regrid import Grid, ModelGrid, strips_on_grid
from geounet.io.writers import open_sink
from geounet.models.metadata import ModelMetadata
from geounet.pipeline.resample import arrays_to_scene
from geounet.pipeline.strips import Strip
from geounet.pipeline.vectorize import StreamingVectorizer

log = logging.getLogger(__name__)


class RasterSink:
    """A strip stage writing one GeoTIFF.

    Args:
        writer: The open :class:`~geounet.io.rasters.RowWriter` (on ``path``).
        encode: ``encode(strip) -> (data, valid)``: the ``(count, n, w)`` array to
            write and the validity for the internal mask (or ``None``).
        resampling: Overview resampling, ``nearest`` (classes) or ``average``.
        path: The file being written.
        cog_to: When set, :meth:`finish` copies ``path`` to this file as a COG
            (``path`` is then a scratch file); otherwise overviews are built
            in ``path``.
    """

    def __init__(self, writer: RowWriter, encode: Any, resampling: str, path: Path,
                 cog_to: Path | None = None) -> None:
        self.writer = writer
        self.encode = encode
        self.resampling = resampling
        self.path = path
        self.cog_to = cog_to

    def add(self, strip: Strip) -> None:
        """Write the strip's rows."""
        data, valid = self.encode(strip)
        self.writer.write(strip.row_off, data, valid)

    def finish(self) -> None:
        """Build overviews (or the COG) and close."""
        self.writer.close(overviews=self.cog_to is None, resampling=self.resampling)
        if self.cog_to is not None:
            to_cog(self.path, self.cog_to, self.resampling)

    def abort(self) -> None:
        """Close without overviews (the file is discarded by the caller)."""
        self.writer.close(overviews=False)


def class_raster(path: Path, scene: Scene | Grid, meta: ModelMetadata,
                 cog_to: Path | None = None) -> RasterSink:
    """A :class:`RasterSink` for the class raster.

    uint8 class ids, nodata :data:`~geounet.constants.CLASS_NODATA`, the model's
    colour table and a ``CLASS_NAMES`` tag (JSON list), in the scene's CRS and grid.

    Args:
        path: File to write.
        scene: The open scene, or a grid (size, CRS, transform).
        meta: The model's metadata (class names, colours, name).
        cog_to: See :class:`RasterSink`.

    Returns:
        The sink.
    """
    writer = RowWriter(
        path,
        geotiff_profile(scene.width, scene.height, 1, "uint8", scene.crs, scene.transform,
                        nodata=CLASS_NODATA),
        band_descriptions=["class_id"],
        colormap=dict(enumerate(meta.colors())),
        tags={"CLASS_NAMES": json.dumps(list(meta.classes)), "MODEL": meta.name},
    )
    return RasterSink(writer, lambda s: (s.classes[None], None), "nearest", path, cog_to)


def probability_raster(path: Path, scene: Scene | Grid, meta: ModelMetadata, dtype: str,
                       cog_to: Path | None = None) -> RasterSink:
    """A :class:`RasterSink` for the probability raster.

    ``uint8``: probability times 255, nodata as an internal mask;
    ``float32``: 0-1, nodata NaN. One band per output channel, named ``p_<class>``.

    Args:
        path: File to write.
        scene: The open scene, or a grid (size, CRS, transform).
        meta: The model's metadata (channels, class names).
        dtype: ``"uint8"`` or ``"float32"``.
        cog_to: See :class:`RasterSink`.

    Returns:
        The sink.
    """
    fdt = dtype == "float32"
    band_names = meta.classes[1:] if meta.binary else meta.classes
    writer = RowWriter(
        path,
        geotiff_profile(scene.width, scene.height, meta.out_channels, dtype, scene.crs,
                        scene.transform, nodata=float("nan") if fdt else None),
        use_mask=not fdt,
        band_descriptions=[f"p_{n}" for n in band_names],
    )

    def encode(strip: Strip) -> tuple[np.ndarray, np.ndarray]:
        if fdt:
            p = strip.probs.copy()
            p[:, ~strip.valid] = np.nan
        else:
            p = np.rint(strip.probs * 255).astype(np.uint8)
            p[:, ~strip.valid] = 0
        return p, strip.valid

    return RasterSink(writer, encode, "average", path, cog_to)


class BackToScene:
    """A strip stage: a raster of a resampled run, brought back to the scene's own grid.

    Strips (on the model-GSD grid) go to ``inner``, a :class:`RasterSink` on a
    scratch file. :meth:`finish` closes it and warps it onto the scene's grid
    strip by strip (:func:`geounet.io.regrid.strips_on_grid`) into the sink
    ``make_final()`` returns, which builds its overviews or COG as usual.
    Pixels that are nodata in the scene are nodata in the result, as in a run
    without resampling. Memory holds one strip of the scene's width.

    Args:
        inner: The model-grid sink (classes uint8, probabilities float32 NaN).
        make_final: Makes the scene-grid sink of the output (on the output's
            temporary path).
        scene: The run's scene (its own grid and validity).
        kind: ``"classes"`` or ``"probabilities"``.
        resampling: See :meth:`geounet.io.regrid.ModelGrid.back_resampling`.
    """

    def __init__(self, inner: RasterSink, make_final: Callable[[], RasterSink], scene: Scene,
                 kind: str, resampling: str) -> None:
        self.inner = inner
        self.make_final = make_final
        self.scene = scene
        self.kind = kind
        self.resampling = resampling
        self.final: RasterSink | None = None

    def add(self, strip: Strip) -> None:
        """Write the strip on the model grid."""
        self.inner.add(strip)

    def finish(self) -> None:
        """Close the model-grid file, warp it onto the scene's grid, finish that file."""
        self.inner.writer.close(overviews=False)
        self.final = self.make_final()
        grid = self.scene.native_grid()
        for row_off, data, valid in strips_on_grid(self.inner.path, grid, self.resampling):
            valid &= self.scene.native_valid(Window(0, row_off, grid.width, valid.shape[0]))
            if self.kind == "classes":
                classes = np.where(valid, data[0], CLASS_NODATA).astype(np.uint8)
                strip = Strip(row_off, np.zeros((0, *valid.shape), np.float32), valid, classes)
            else:
                strip = Strip(row_off, data.astype(np.float32, copy=False), valid)
            self.final.add(strip)
        self.final.finish()

    def abort(self) -> None:
        """Close both files (they are discarded by the caller)."""
        self.inner.abort()
        if self.final is not None:
            self.final.abort()


def output_rasters(temps: dict[str, Path | None], scratch: Callable[[Path], Path],
                   scene: Scene, meta: ModelMetadata, outputs: OutputConfig,
                   back: ModelGrid | None = None) -> list[Any]:
    """The class and probability raster sinks of a run.

    Args:
        temps: Temporary paths by output (``mask_out``, ``prob_out``; ``None``
            for none).
        scratch: ``scratch(near) -> path`` of a scratch file removed at commit
            (:meth:`geounet.io.atomic.OutputSet.scratch`).
        scene: The run's scene.
        meta: The model's metadata.
        outputs: Probability dtype and COG.
        back: The model grid of a resampled run whose rasters go back to the
            scene's grid (:class:`BackToScene`); ``None`` writes them on the
            grid the run predicts on.

    Returns:
        The sinks, class raster first.
    """
    def make(kind: str, tmp: Path, grid: Scene | Grid) -> RasterSink:
        path, cog_to = (scratch(tmp), tmp) if outputs.cog else (tmp, None)
        if kind == "classes":
            return class_raster(path, grid, meta, cog_to)
        return probability_raster(path, grid, meta, outputs.prob_dtype, cog_to)

    sinks: list[Any] = []
    for kind, key in (("classes", "mask_out"), ("probabilities", "prob_out")):
        tmp = temps[key]
        if tmp is None:
            continue
        if back is None:
            sinks.append(make(kind, tmp, scene))
            continue
        inner = (class_raster(scratch(tmp), scene, meta) if kind == "classes"
                 else probability_raster(scratch(tmp), scene, meta, "float32"))
        sinks.append(BackToScene(inner, partial(make, kind, tmp, scene.native_grid()), scene,
                                 kind, back.back_resampling(kind)))
    return sinks


class PolygonSink:
    """A strip stage: polygons, post-processed, counted and written as they finish.

    Args:
        scene: The open scene (grid and CRS of the polygons).
        meta: The model's metadata (class names, background class).
        config: Vectorising options (connectivity; the rest via the hook).
        postprocess: The ``geounet_postprocess_footprints`` chain (geounet's
            own finishing first, then plugins').
        context: The run's hook context (see :mod:`geounet.hookspecs`).
        output: Temporary path of the vector file, or ``None`` for none.
        keep: Also keep every batch in memory (:attr:`batches`).

    Attributes:
        count: Polygons written (after every post-processor).
        areas_m2: Total ``area_m2`` per class name.
        batches: The kept GeoDataFrames.
    """

    def __init__(self, scene: Scene, meta: ModelMetadata, config: VectorizeConfig,
                 postprocess: HookChain, context: dict[str, Any],
                 output: str | os.PathLike[str] | None = None, keep: bool = False) -> None:
        self.postprocess = postprocess
        self.context = context
        self.keep = keep
        self.count = 0
        self.areas_m2: dict[str, float] = {}
        self.batches: list[Any] = []
        multi = config.simplify_m > 0 or config.connectivity == 8
        self.writer = (open_sink(output, scene.crs, "Unknown" if multi else "Polygon")
                       if output is not None else None)
        self.vectorizer = StreamingVectorizer(scene.width, scene.transform, scene.crs,
                                              meta.classes, self._on_polygons, config,
                                              background=meta.background_class)

    def _on_polygons(self, gdf: Any) -> None:
        gdf = self.postprocess(gdf, context=self.context)
        if not len(gdf):
            return
        self.count += len(gdf)
        for name, a in gdf.groupby("class_name")["area_m2"].sum().items():
            self.areas_m2[name] = self.areas_m2.get(name, 0.0) + float(a)
        if self.writer is not None:
            self.writer.write(gdf)
        if self.keep:
            self.batches.append(gdf)

    def add(self, strip: Strip) -> None:
        """Vectorise the strip's classes."""
        self.vectorizer.add(strip)

    def finish(self) -> None:
        """Hand on the last polygons and close the file."""
        self.vectorizer.finish()
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def abort(self) -> None:
        """Stop the writer (the file is discarded by the caller)."""
        self.vectorizer.abort()
        if self.writer is not None:
            self.writer.abort()
            self.writer = None


class ArrayCollector:
    """A strip stage keeping the whole probability and class rasters in memory.

    Args:
        channels: Output channels ``k``.
        height: Rows of the grid the run predicts on.
        width: Its columns.
        back: ``(model_grid, scene)`` of a resampled run whose arrays go back
            to the scene's own grid at :meth:`finish`
            (:func:`geounet.pipeline.resample.arrays_to_scene`), or ``None``.

    Attributes:
        probs: ``(k, height, width)`` float32 (NaN = nodata).
        classes: ``(height, width)`` uint8 (255 = nodata).
    """

    def __init__(self, channels: int, height: int, width: int,
                 back: tuple[ModelGrid, Scene] | None = None) -> None:
        self.probs = np.zeros((channels, height, width), np.float32)
        self.classes = np.full((height, width), CLASS_NODATA, np.uint8)
        self.back = back

    def add(self, strip: Strip) -> None:
        """Copy the strip in."""
        assert strip.classes is not None, "ArrayCollector needs classified strips"
        rows = slice(strip.row_off, strip.row_off + strip.n_rows)
        self.probs[:, rows] = np.where(strip.valid, strip.probs, np.nan)
        self.classes[rows] = strip.classes

    def finish(self) -> None:
        """Bring the arrays back to the scene's grid (resampled runs only)."""
        if self.back is not None:
            self.probs, self.classes = arrays_to_scene(self.probs, self.classes, *self.back)

    def abort(self) -> None:
        """Nothing to release."""
