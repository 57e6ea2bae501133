"""Stage 7 - write: the strip stages that end a run.

* :class:`RasterSink`: one GeoTIFF (class raster or probability raster) written
  strip by strip, with overviews or as a COG at :meth:`~RasterSink.finish`.
* :class:`PolygonSink`: the streaming vectoriser, geounet's own and plugins'
  footprint post-processing (one :class:`~geounet.hooks.HookChain`), the area
  statistics, and the vector writer chosen by extension.
* :class:`ArrayCollector`: the whole scene's probabilities and classes in
  memory (``keep_arrays``; small scenes only).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from geounet.config import VectorizeConfig
from geounet.constants import CLASS_NODATA
from geounet.hooks import HookChain
from geounet.io.rasters import RowWriter, geotiff_profile, to_cog
from geounet.io.read import Scene
from geounet.io.writers import open_sink
from geounet.models.metadata import ModelMetadata
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


def class_raster(path: Path, scene: Scene, meta: ModelMetadata,
                 cog_to: Path | None = None) -> RasterSink:
    """A :class:`RasterSink` for the class raster.

    uint8 class ids, nodata :data:`~geounet.constants.CLASS_NODATA`, the model's
    colour table and a ``CLASS_NAMES`` tag (JSON list), in the scene's CRS and grid.

    Args:
        path: File to write.
        scene: The open scene (size, CRS, transform).
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


def probability_raster(path: Path, scene: Scene, meta: ModelMetadata, dtype: str,
                       cog_to: Path | None = None) -> RasterSink:
    """A :class:`RasterSink` for the probability raster.

    ``uint8``: probability times 255, nodata as an internal mask;
    ``float32``: 0-1, nodata NaN. One band per output channel, named ``p_<class>``.

    Args:
        path: File to write.
        scene: The open scene.
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
        height: Scene rows.
        width: Scene columns.

    Attributes:
        probs: ``(k, height, width)`` float32 (NaN = nodata).
        classes: ``(height, width)`` uint8 (255 = nodata).
    """

    def __init__(self, channels: int, height: int, width: int) -> None:
        self.probs = np.zeros((channels, height, width), np.float32)
        self.classes = np.full((height, width), CLASS_NODATA, np.uint8)

    def add(self, strip: Strip) -> None:
        """Copy the strip in."""
        assert strip.classes is not None, "ArrayCollector needs classified strips"
        rows = slice(strip.row_off, strip.row_off + strip.n_rows)
        self.probs[:, rows] = np.where(strip.valid, strip.probs, np.nan)
        self.classes[rows] = strip.classes

    def finish(self) -> None:
        """Nothing to finish."""

    def abort(self) -> None:
        """Nothing to release."""
