"""Measure a model's effective context: how far from a tile edge predictions still change.

A pixel's prediction depends on the pixels around it, up to the model's
effective receptive field. Near a tile edge part of that context is missing (the
network sees padding), so the pixel's probability differs from what a pass with
more context gives. Beyond some distance from the edge it no longer changes:
that distance is the model's *context* (``context_px``). It sets the blending
margin at interior tile edges and the default overlap (``2 * context + ramp``,
:func:`recommend_tiling`), so a stitched scene equals one full-context pass.

The measurement uses only tiles of the run's size, so it works with every
runtime, fixed-size ONNX graphs included:

1. A few *regions* of ``tile + K * stride`` pixels are read from a real scene
   (seeded positions) and scaled as ``geounet predict`` scales them.
2. Each region is covered by ``(K + 1)^2`` tiles at offsets that are multiples
   of ``stride`` (itself a multiple of the model's ``pad_multiple``, so every
   tile sees the same pooling grid).
3. Each pixel's *reference* is its prediction from the tile in which it lies
   farthest from an edge (at least ``tile / 2 - stride``).
4. Every other tile's prediction of the pixel is compared with the reference,
   ``|dp|`` = the largest probability difference over the channels, and filed
   under the pixel's distance ``d`` from that tile's nearest edge.
5. ``context_px`` is the smallest ``d`` from which the ``percentile`` (99.9) of
   ``|dp|`` stays at or below ``tol_dp`` (0.01) at every larger distance that
   could be measured (below ``tile / 2 - stride``).

A model that is not translation-equivariant (bilinear upsampling with
``align_corners=True``, a tile size that is not a multiple of its pooling
factor) never settles: the result says ``converged=False`` and ``context_px``
is the largest distance measured. Regions come from :mod:`geounet.measure_context`.
Raster Vision crops a fixed ``crop_sz`` and
Deepness keeps tile centres; both leave the figure to the user.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from geounet.errors import InvalidOptionError
from geounet.pipeline.tiling import MIN_RAMP_PX

log = logging.getLogger(__name__)

PredictFn = Callable[[np.ndarray], np.ndarray]
"""A predictor: ``(b, bands, t, t)`` float32 -> ``(b, k, t, t)`` float32 probabilities."""
N_BINS = 2000  # |dp| histogram bins over [0, 1]


@dataclass(frozen=True)
class ContextMeasure:
    """The result of :func:`measure_context`.

    Attributes:
        context_px: Distance from a tile edge (px) beyond which predictions no
            longer change (see the module docstring).
        converged: False when ``|dp|`` was still above ``tol_dp`` at the
            largest distance measured (``context_px`` is then a lower bound).
        measurable_px: Largest distance that could be measured (px).
        tile_size_px: Tile size of the measurement (px).
        stride_px: Offset step between the tiles of a region (px).
        percentile: Percentile of ``|dp|`` compared with ``tol_dp``.
        tol_dp: Largest probability change that counts as "no change".
        regions: Regions measured.
        samples: (tile, pixel) comparisons made.
        profile: ``percentile`` of ``|dp|`` at distance 0, 1, 2... px (rounded).
        scene: Name of the scene measured on (``None`` for arrays).
    """

    context_px: int
    converged: bool
    measurable_px: int
    tile_size_px: int
    stride_px: int
    percentile: float
    tol_dp: float
    regions: int
    samples: int
    profile: list[float]
    scene: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (stored as the model's ``context``)."""
        return asdict(self)


def edge_distance(tile_px: int) -> np.ndarray:
    """``(tile_px, tile_px)`` int: each pixel's distance (px) to the tile's nearest edge."""
    i = np.arange(tile_px)
    d = np.minimum(i, tile_px - 1 - i)
    return np.minimum.outer(d, d)


def measure_stride(tile_px: int, align_px: int) -> int:
    """Offset step between the tiles of a region: ``tile / 8`` rounded to ``align_px``.

    Raises:
        InvalidOptionError: (a ``ValueError``) when the tile is not a multiple of
            ``align_px`` or too small to measure anything.
    """
    if tile_px % align_px or tile_px < 4 * align_px:
        raise InvalidOptionError(
            f"tile size {tile_px} px: measuring a model's context needs a multiple of its "
            f"pad multiple {align_px} px and at least {4 * align_px} px; pass e.g. "
            f"--tile-size {max(4 * align_px, -(-tile_px // align_px) * align_px)}")
    return max(align_px, tile_px // 8 // align_px * align_px)


def _region_tiles(region: np.ndarray, tile: int, stride: int, predict: PredictFn,
                  batch_size: int) -> tuple[list[tuple[int, int]], list[np.ndarray]]:
    """Predict every tile of a region at offsets ``(i * stride, j * stride)``."""
    _, h, w = region.shape
    offs = [(r, c) for r in range(0, h - tile + 1, stride) for c in range(0, w - tile + 1, stride)]
    probs: list[np.ndarray] = []
    for k in range(0, len(offs), batch_size):
        group = offs[k:k + batch_size]
        batch = np.stack([region[:, r:r + tile, c:c + tile] for r, c in group])
        probs.extend(np.asarray(predict(batch), np.float32))  # (k, tile, tile) each
    return offs, probs


def region_histogram(region: np.ndarray, valid: np.ndarray, predict: PredictFn, tile: int,
                     stride: int, batch_size: int = 4) -> np.ndarray:
    """``|dp|`` histogram by distance from a tile edge for one region.

    Args:
        region: ``(bands, h, w)`` float32 scaled input, ``h, w >= tile``.
        valid: ``(h, w)`` bool, pixels to compare.
        predict: ``(b, bands, tile, tile)`` -> ``(b, k, tile, tile)`` probabilities.
        tile: Tile size (px).
        stride: Offset step (px), a multiple of the model's pad multiple.
        batch_size: Tiles per call of ``predict``.

    Returns:
        ``(tile // 2 - stride, N_BINS)`` int64 counts: row ``d`` holds the
        ``|dp|`` of pixels at ``d`` px from a tile's nearest edge against
        their reference (see the module docstring).
    """
    offs, probs = _region_tiles(region, tile, stride, predict, batch_size)
    dist = edge_distance(tile)
    _, h, w = region.shape
    best = np.full((h, w), -1, np.int64)
    ref = np.zeros((probs[0].shape[0], h, w), np.float32)
    for (r, c), p in zip(offs, probs, strict=True):
        sl = (slice(r, r + tile), slice(c, c + tile))
        better = dist > best[sl]
        best[sl] = np.where(better, dist, best[sl])
        ref[:, sl[0], sl[1]] = np.where(better, p, ref[:, sl[0], sl[1]])
    limit = tile // 2 - stride
    hist = np.zeros((max(limit, 1), N_BINS), np.int64)
    for (r, c), p in zip(offs, probs, strict=True):
        sl = (slice(r, r + tile), slice(c, c + tile))
        dp = np.nanmax(np.abs(p - ref[:, sl[0], sl[1]]), axis=0)
        use = valid[sl] & (best[sl] >= limit) & (dist < limit) & np.isfinite(dp)
        d = dist[use]
        bins = np.minimum((dp[use] * N_BINS).astype(np.int64), N_BINS - 1)
        np.add.at(hist, (d, bins), 1)
    return hist


def context_from_histogram(hist: np.ndarray, percentile: float = 99.9,
                           tol_dp: float = 0.01) -> tuple[int, bool, list[float]]:
    """Context, convergence and the ``|dp|`` profile from :func:`region_histogram` counts.

    Args:
        hist: ``(n_distances, N_BINS)`` counts (summed over regions).
        percentile: Percentile of ``|dp|`` per distance.
        tol_dp: Largest ``|dp|`` that counts as "no change".

    Returns:
        ``(context_px, converged, profile)``; ``profile[d]`` is the percentile
        at distance ``d`` (NaN where no sample).
    """
    counts = hist.sum(axis=1)
    cum = np.cumsum(hist, axis=1)
    profile: list[float] = []
    for d in range(hist.shape[0]):
        if counts[d] == 0:
            profile.append(float("nan"))
            continue
        k = int(np.searchsorted(cum[d], percentile / 100 * counts[d]))
        profile.append((k + 1) / N_BINS)
    above = [d for d, q in enumerate(profile) if np.isfinite(q) and q > tol_dp]
    context = above[-1] + 1 if above else 0
    converged = context < hist.shape[0] and bool(counts.sum())
    return context, converged, profile


def measure_regions(regions: list[tuple[np.ndarray, np.ndarray]], predict: PredictFn, tile: int,
                    align_px: int, percentile: float = 99.9, tol_dp: float = 0.01,
                    batch_size: int = 4, scene: str | None = None) -> ContextMeasure:
    """:class:`ContextMeasure` of a predictor over in-memory regions.

    Args:
        regions: ``(scaled (bands, R, R) float32, valid (R, R) bool)`` pairs,
            ``R = tile + 4 * measure_stride(tile, align_px)``.
        predict: The model as a predictor (see :func:`region_histogram`).
        tile: Tile size (px).
        align_px: The model's pad multiple (px).
        percentile: Percentile of ``|dp|`` (see :func:`context_from_histogram`).
        tol_dp: Tolerance on ``|dp|``.
        batch_size: Tiles per call of ``predict``.
        scene: Name of the scene, for the record.

    Returns:
        The measure.
    """
    stride = measure_stride(tile, align_px)
    hist = sum(region_histogram(x, v, predict, tile, stride, batch_size) for x, v in regions)
    context, converged, profile = context_from_histogram(np.asarray(hist), percentile, tol_dp)
    measure = ContextMeasure(
        context_px=int(context), converged=converged, measurable_px=tile // 2 - stride,
        tile_size_px=tile, stride_px=stride, percentile=percentile, tol_dp=tol_dp,
        regions=len(regions), samples=int(np.asarray(hist).sum()),
        profile=[round(q, 4) for q in profile], scene=scene)
    if not converged:
        log.warning(
            "predictions still change by more than %g at %d px from a tile edge (the largest "
            "distance measurable with %d px tiles): the model is not translation-equivariant "
            "(bilinear upsampling with align_corners=True?) or its context exceeds the tile; "
            "measure with a larger --tile-size", tol_dp, measure.measurable_px, tile)
    return measure


def recommend_tiling(context_px: int, align_px: int, tile_px: int,
                     max_tile_px: int = 1024) -> tuple[int, int]:
    """Default tile size and overlap for a model with ``context_px``.

    The overlap is ``2 * context + MIN_RAMP_PX`` rounded up to ``align_px``, so
    each pair of neighbours has a margin of ``context`` px on each side and a
    ramp between (:func:`geounet.pipeline.tiling.blend_margin`). The tile is the
    model's, grown (up to ``max_tile_px``) to four times the overlap rounded up
    to 128 px, so that at most ``(4/3)^2 = 1.78`` model pixels are run per
    scene pixel (``(tile / stride)^2``; measured against the gain in
    docs/tiling.md).

    Args:
        context_px: Measured context (px).
        align_px: The model's pad multiple (px).
        tile_px: The model's recommended tile size (px).
        max_tile_px: Largest tile this recommends (px).

    Returns:
        ``(tile_size_px, overlap_px)``.
    """
    def up(v: int, m: int) -> int:
        return -(-v // m) * m

    overlap = up(2 * context_px + MIN_RAMP_PX, align_px)
    tile = min(max(tile_px, up(4 * overlap, max(align_px, 128))), max(max_tile_px, tile_px))
    if overlap >= tile:
        overlap = up(tile // 2, align_px)
    return tile, overlap


def context_metadata(meta: Any, measure: ContextMeasure, retile: bool = True) -> dict[str, Any]:
    """Metadata fields to store a measure: ``context_px``, ``context`` and the tiling.

    Args:
        meta: The model's metadata (pad multiple, tile size).
        measure: The measure.
        retile: Also set ``tile_size_px`` / ``overlap_px`` from
            :func:`recommend_tiling` (not for fixed-size graphs, whose tile
            size cannot change).

    Returns:
        Keyword arguments for ``dataclasses.replace(meta, ...)``.
    """
    out: dict[str, Any] = {"context_px": measure.context_px, "context": measure.to_dict()}
    tile, overlap = recommend_tiling(measure.context_px, meta.pad_multiple, meta.tile_size_px,
                                     meta.tile_size_px if not retile else 1024)
    out.update(tile_size_px=tile, overlap_px=overlap)
    return out
