"""Stage 4 - stitch: weighted blending of overlapping tile predictions.

Each tile's prediction is multiplied by a separable weight window and added to
an accumulator together with the weights; the stitched value is
``sum(w * p) / sum(w)``. Along an axis, at an edge interior to the scene, the
window is :data:`MARGIN_WEIGHT` (near zero) over the first ``margin_px`` pixels
(the model's measured context: predictions there still depend on where the tile
ends), then rises as a squared sine (half a Hann window) over the next ``ramp =
overlap_px - 2 * margin_px`` pixels, ``w(i) = sin^2(pi/2 * (i + 0.5) / ramp)``,
and is 1 in the interior. With ``overlap = 2 * margin + ramp`` the ramp-down of
one tile lies exactly on the ramp-up of its neighbour and the two add up to 1,
so every pixel's value comes from predictions made at least ``margin_px`` from
any interior tile edge: the result is both seam-free and context-complete (see
docs/tiling.md). With ``margin_px = 0`` this is plain feathering over the whole
overlap. A tile edge that lies on the scene's own edge keeps full weight, so
edge pixels are not down-weighted or lost. Every weight is strictly positive, so
every covered pixel has a defined value, and a constant prediction stitches to
the same constant (no seams).

The idea is the "smooth tiled predictions" blending of Chevalier (2017,
github.com/Vooban/Smoothly-Blend-Image-Patches) and pytorch-toolbelt's
``TileMerger``, with the edge rule above so that only interior tile borders are
feathered.

The stitcher streams: tiles arrive row-major (as :func:`geounet.tiling.plan_tiles`
orders them) and it keeps only one tile-height strip of the scene (``channels x
tile_size_px x width`` float32 plus a ``tile_size_px x width`` weight sum).
Rows above the current tile row can no longer change, so they are handed to a
callback and dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np
from rasterio.windows import Window

from geounet.pipeline.tiling import TilePlan

RowsCallback = Callable[[int, np.ndarray, np.ndarray], None]
"""``callback(row_off, probs, covered)`` for finished rows: ``probs`` is
``(channels, n_rows, width)`` float32, ``covered`` ``(n_rows, width)`` bool (False
where no tile contributed, i.e. skipped all-nodata tiles)."""


MARGIN_WEIGHT = 1e-4
"""Weight of a prediction within ``margin_px`` of an interior tile edge: not 0,
so that a pixel whose only other tile was skipped (all nodata) keeps a value."""


@lru_cache(maxsize=64)
def _edge(overlap_px: int, margin_px: int) -> np.ndarray:
    """Weights of the first ``overlap_px`` pixels from an interior edge."""
    margin = min(margin_px, overlap_px // 2)
    ramp = overlap_px - 2 * margin
    i = np.arange(ramp, dtype=np.float64)
    rise = np.sin(0.5 * np.pi * (i + 0.5) / ramp) ** 2
    w = np.concatenate([np.full(margin, MARGIN_WEIGHT), rise, np.ones(margin)])
    return np.maximum(w, MARGIN_WEIGHT).astype(np.float32)


def axis_weights(tile_px: int, overlap_px: int, at_start: bool, at_end: bool,
                 margin_px: int = 0) -> np.ndarray:
    """1-D blending weights along one axis of a tile.

    Args:
        tile_px: Tile length in pixels.
        overlap_px: Overlap in pixels; 0 gives uniform weights.
        at_start: The tile's first pixel is on the scene's edge (full weight there).
        at_end: The tile's last pixel is on or past the scene's edge.
        margin_px: Pixels at an interior edge with weight :data:`MARGIN_WEIGHT`
            (at most half the overlap; see the module docstring).

    Returns:
        ``(tile_px,)`` float32 weights in ``(0, 1]``.
    """
    w = np.ones(tile_px, dtype=np.float32)
    if overlap_px <= 0:
        return w
    ov = min(overlap_px, tile_px)
    edge = _edge(ov, margin_px)
    if not at_start:
        w[:ov] = np.minimum(w[:ov], edge)
    if not at_end:
        w[tile_px - ov :] = np.minimum(w[tile_px - ov :], edge[::-1])
    return w


def tile_weights(window: Window, plan: TilePlan) -> np.ndarray:
    """2-D weight window of one tile of a plan.

    Args:
        window: A window of ``plan``.
        plan: The tiling plan (gives the scene size and overlap).

    Returns:
        ``(tile_size_px, tile_size_px)`` float32, the outer product of the row
        and column :func:`axis_weights`.
    """
    t = plan.tile_size_px
    row0, col0 = int(window.row_off), int(window.col_off)
    m = plan.margin_px
    wy = axis_weights(t, plan.overlap_px, row0 == 0, row0 + t >= plan.height, m)
    wx = axis_weights(t, plan.overlap_px, col0 == 0, col0 + t >= plan.width, m)
    return np.outer(wy, wx)


class StripStitcher:
    """Blend tiles into finished rows while holding one strip in memory.

    Args:
        plan: The tiling plan the tiles come from.
        channels: Number of probability channels per tile.
        on_rows: Called with finished rows, top to bottom, each row exactly
            once (see :data:`RowsCallback`).

    Memory is ``(channels + 1) * tile_size_px * width * 4`` bytes, whatever the
    scene height.
    """

    def __init__(self, plan: TilePlan, channels: int, on_rows: RowsCallback) -> None:
        self.plan = plan
        self.channels = channels
        self.on_rows = on_rows
        self._h = plan.tile_size_px
        self._acc = np.zeros((channels, self._h, plan.width), dtype=np.float32)
        self._wsum = np.zeros((self._h, plan.width), dtype=np.float32)
        self._r0 = 0  # scene row of buffer row 0 (first row not yet emitted)

    def add(self, window: Window, probs: np.ndarray) -> None:
        """Accumulate one tile.

        Args:
            window: The tile's window; tiles must come in the plan's row-major
                order (tiles may be skipped).
            probs: ``(channels, tile_size_px, tile_size_px)`` float32 probabilities.

        Raises:
            ValueError: if a tile arrives above rows already emitted.
        """
        row0, col0 = int(window.row_off), int(window.col_off)
        if row0 < self._r0:
            raise ValueError(f"tile at row {row0} arrives after row {self._r0} was emitted")
        if row0 > self._r0:
            self._emit(row0)
        w = tile_weights(window, self.plan)
        r = row0 - self._r0
        h = min(self._h - r, self.plan.height - row0)
        wd = min(self.plan.tile_size_px, self.plan.width - col0)
        w = w[:h, :wd]
        self._acc[:, r : r + h, col0 : col0 + wd] += probs[:, :h, :wd] * w
        self._wsum[r : r + h, col0 : col0 + wd] += w

    def finish(self) -> None:
        """Emit every row not yet emitted (call once after the last tile)."""
        self._emit(self.plan.height)

    def _emit(self, upto: int) -> None:
        """Emit rows ``[self._r0, upto)`` and shift the strip down."""
        upto = min(upto, self.plan.height)
        n = upto - self._r0
        if n <= 0:
            return
        n_buf = min(n, self._h)
        wsum = self._wsum[:n_buf]
        covered = wsum > 0
        probs = np.divide(
            self._acc[:, :n_buf],
            wsum,
            out=np.zeros_like(self._acc[:, :n_buf]),
            where=covered,
        )
        self.on_rows(self._r0, probs, covered)
        if n > n_buf:  # rows no tile touched (whole tile rows skipped as nodata)
            w = self.plan.width
            self.on_rows(
                self._r0 + n_buf,
                np.zeros((self.channels, n - n_buf, w), np.float32),
                np.zeros((n - n_buf, w), bool),
            )
        keep = self._h - n_buf
        if keep > 0:
            self._acc[:, :keep] = self._acc[:, n_buf:].copy()
            self._wsum[:keep] = self._wsum[n_buf:].copy()
        self._acc[:, keep:] = 0
        self._wsum[keep:] = 0
        self._r0 = upto


def stitch_to_array(plan: TilePlan, channels: int, tiles) -> tuple[np.ndarray, np.ndarray]:
    """Stitch ``(window, probs)`` pairs into whole-scene arrays.

    Convenience for small scenes and training validation (holds the whole
    scene in memory).

    Args:
        plan: The tiling plan.
        channels: Probability channels.
        tiles: Iterable of ``(window, (channels, t, t) float32)`` in plan order.

    Returns:
        ``(probs, covered)``: ``(channels, height, width)`` float32 and
        ``(height, width)`` bool.
    """
    probs = np.zeros((channels, plan.height, plan.width), np.float32)
    covered = np.zeros((plan.height, plan.width), bool)

    def on_rows(r0: int, p: np.ndarray, c: np.ndarray) -> None:
        probs[:, r0 : r0 + p.shape[1]] = p
        covered[r0 : r0 + p.shape[1]] = c

    st = StripStitcher(plan, channels, on_rows)
    for window, p in tiles:
        st.add(window, p)
    st.finish()
    return probs, covered
