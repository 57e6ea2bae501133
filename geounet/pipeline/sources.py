"""Stages 1-3 as a tile source: read and scale the tiles of a plan, predict them.

A tile source turns a scene's tile plan into predicted tiles, in plan order;
the run (:class:`geounet.pipeline.run.SceneRun`) stitches whatever source it is
handed. :class:`LocalTileSource` reads and scales on a background thread while
the model runs on this one; :class:`geounet.distributed.DaskTileSource` predicts
blocks of tile rows on Dask workers. Both yield the same tiles, so the result
does not depend on the source.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np
from rasterio.windows import Window

from geounet._threads import background
from geounet.config import PredictConfig
from geounet.io.read import Scene, iter_tile_batches
from geounet.models.foreign_onnx import input_scaler
from geounet.models.modelfile import LoadedModel
from geounet.pipeline.predictors import make_predictor
from geounet.pipeline.tiling import TilePlan
from geounet.progress import Progress, check_cancelled

Tile = tuple[Window, np.ndarray]
"""A predicted tile: its window and ``(k, t, t)`` float32 probabilities, NaN at
the scene's nodata pixels (the reader's validity travels with the tile, so the
run does not read the scene's masks a second time; see :func:`mark_nodata`)."""


def mark_nodata(probs: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Set the probabilities of invalid pixels to NaN, in place.

    Validity is a property of the scene's pixel, the same in every tile that
    holds it, so NaN survives blending exactly where the scene is nodata
    (:class:`geounet.pipeline.stitch.StripStitcher`) and the classifier reads
    it back from the stitched strip.

    Args:
        probs: ``(b, k, t, t)`` float32 probabilities of a batch.
        valid: ``(b, t, t)`` bool validity of its tiles.

    Returns:
        ``probs`` (a copy if it was read-only).
    """
    if not valid.all():
        if not probs.flags.writeable:
            probs = probs.copy()
        probs[np.broadcast_to(~valid[:, None], probs.shape)] = np.nan
    return probs


class TileSource(Protocol):
    """Anything that predicts the tiles of a plan."""

    def tiles(self, scene: Scene, plan: TilePlan, model: LoadedModel, config: PredictConfig,
              progress: Progress) -> Iterator[Tile]:
        """Predicted tiles in plan order; tiles whose pixels are all nodata are left out.

        The probabilities of nodata pixels must be NaN (:func:`mark_nodata`):
        the run takes the scene's validity from them.

        Args:
            scene: The open scene (its ``path`` and ``bands`` are used).
            plan: The tile plan.
            model: The loaded model (band statistics, predictor).
            config: Device, batch size, precision, prefetching, TTA.
            progress: Reporter; stage ``predict`` counts plan tiles done.

        Returns:
            An iterator of ``(window, probs)``.
        """
        ...


class LocalTileSource:
    """Read and scale on a background thread, predict on the calling thread.

    Reading overlaps the model: ``config.prefetch`` batches are read ahead
    (0: read on the calling thread).
    """

    def tiles(self, scene: Scene, plan: TilePlan, model: LoadedModel, config: PredictConfig,
              progress: Progress) -> Iterator[Tile]:
        """Predicted tiles in plan order (see :meth:`TileSource.tiles`).

        Args:
            scene: The open scene.
            plan: The tile plan.
            model: The loaded model.
            config: Prediction options.
            progress: Reporter (stage ``predict``).

        Yields:
            ``(window, probs)``, ``probs`` ``(k, t, t)`` float32.

        Raises:
            CancelledError: when the progress reporter asks to cancel.
        """
        meta = model.metadata
        predictor = make_predictor(model, config, plan.tile_size_px)
        scaler = input_scaler(meta, scene.dataset.dtypes[scene.bands[0] - 1])
        windows = plan.windows
        total = len(windows)
        progress(0, total, "predict")

        def batches() -> Iterator[Any]:
            return iter_tile_batches(scene.path, scene.bands, windows, scaler, config.batch_size,
                                     scene.grid)

        source = background(batches, config.prefetch) if config.prefetch else batches()
        reported = 0
        try:
            for wins, batch, valid, n_read in source:
                check_cancelled(progress)
                if batch is not None:
                    yield from zip(wins, mark_nodata(predictor(batch), valid), strict=True)
                if n_read > reported:
                    progress(n_read, total, "predict")
                    reported = n_read
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()
