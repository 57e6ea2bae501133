"""Stage 2 - tile: the plan of overlapping windows that covers a scene.

Tiles are ``tile_size_px`` square windows placed every ``stride = tile_size_px -
overlap_px`` pixels along each axis. The last tile of a row/column is shifted
back so that it ends on the scene's edge (so no tile hangs outside a scene that
is at least one tile large, and no pixel is left out). Along an axis shorter
than one tile the single tile starts at 0 and reaches past the edge; the reader
pads it (the part inside the scene is read, the rest is padded).

With ``align_px`` (a run passes the model's ``pad_multiple``, ``2**depth`` for a
U-Net), every offset is a multiple of ``align_px``: the stride is rounded down
to a multiple (so the overlap only grows) and the last tile starts at the next
multiple, reaching fewer than ``align_px`` pixels past the scene's edge. A
network with pooling is translation-equivariant only for shifts by multiples of
its pooling factor, so aligned tiles see the pooling grid one pass over the
whole scene would see, and a pixel's prediction does not depend on which tile
it came from (beyond the model's context, ``margin_px``; see
:mod:`geounet.pipeline.stitch` and docs/tiling.md).

The plan is ordered row-major (all tiles of a tile row, left to right, then the
next row), which the streaming stitcher relies on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from rasterio.windows import Window

from geounet.config import TilingConfig
from geounet.errors import TilingError

log = logging.getLogger(__name__)

MIN_RAMP_PX = 16
"""Shortest blending ramp (px) that :func:`blend_margin` leaves between margins."""


def aligned_stride(tile_px: int, overlap_px: int, align_px: int = 1) -> int:
    """The stride of a tiling: ``tile_px - overlap_px`` rounded down to ``align_px``.

    Args:
        tile_px: Tile size in pixels.
        overlap_px: Requested overlap in pixels.
        align_px: Offsets must be multiples of this (px, >= 1).

    Returns:
        The stride in pixels, at least ``align_px`` (so the overlap is at least
        ``overlap_px`` where the tile allows it).
    """
    stride = tile_px - overlap_px
    if align_px > 1:
        stride = max(align_px, stride // align_px * align_px)
    return stride


def blend_margin(overlap_px: int, context_px: int) -> int:
    """Pixels at an interior tile edge that get (near) zero blending weight.

    The margin is the model's context, as far as the overlap leaves a ramp of
    at least :data:`MIN_RAMP_PX` between the margins of two neighbours
    (``overlap = 2 * margin + ramp``); 0 (plain squared-sine feathering over
    the whole overlap) for a model with no measured context.

    Args:
        overlap_px: Overlap between neighbouring tiles (px).
        context_px: The model's measured context (px, 0 when unknown).

    Returns:
        The margin in pixels, ``0 <= margin <= context_px``.
    """
    return max(0, min(int(context_px), (overlap_px - MIN_RAMP_PX) // 2))


def warn_short_overlap(overlap_px: int, context_px: int, model_name: str) -> bool:
    """Log a warning when an explicit overlap is below twice the model's context.

    Returns:
        True when it warned.
    """
    if overlap_px >= 2 * context_px:
        return False
    log.warning(
        "overlap %d px is below twice model %s's context of %d px: pixels near interior "
        "tile edges still depend on the tiling; leave out --overlap or pass --overlap %d",
        overlap_px, model_name, context_px, 2 * context_px + MIN_RAMP_PX)
    return True


def axis_offsets(length_px: int, tile_px: int, overlap_px: int, align_px: int = 1) -> list[int]:
    """Tile start offsets along one axis.

    Args:
        length_px: Scene size along the axis, in pixels (>= 1).
        tile_px: Tile size in pixels.
        overlap_px: Overlap in pixels (``0 <= overlap_px < tile_px``).
        align_px: Every offset is a multiple of this (px); the stride is
            :func:`aligned_stride`.

    Returns:
        Sorted, unique offsets in pixels. The first is 0; the last is
        ``max(0, length_px - tile_px)`` rounded up to a multiple of
        ``align_px``, so ``offset + tile_px >= length_px``.

    Raises:
        TilingError: for an invalid tile/overlap pair.
    """
    TilingConfig(tile_px, overlap_px)
    stride = aligned_stride(tile_px, overlap_px, align_px)
    last = max(0, length_px - tile_px)
    if align_px > 1:
        last = -(-last // align_px) * align_px
    offsets = list(range(0, last, stride))
    offsets.append(last)
    return sorted(set(offsets))


@dataclass(frozen=True)
class TilePlan:
    """Windows covering a ``height x width`` scene.

    Attributes:
        width: Scene width in pixels.
        height: Scene height in pixels.
        tile_size_px: Tile edge in pixels.
        overlap_px: Nominal overlap between neighbours in pixels
            (``tile_size_px`` minus the stride).
        col_offsets: Column offsets of tiles (pixels).
        row_offsets: Row offsets of tile rows (pixels).
        align_px: Offsets are multiples of this (px).
        margin_px: Pixels at interior tile edges blended with (near) zero
            weight (:func:`blend_margin`).
    """

    width: int
    height: int
    tile_size_px: int
    overlap_px: int
    col_offsets: tuple[int, ...]
    row_offsets: tuple[int, ...]
    align_px: int = 1
    margin_px: int = 0

    @property
    def windows(self) -> list[Window]:
        """All tile windows, row-major; each is ``tile_size_px`` square."""
        t = self.tile_size_px
        return [Window(c, r, t, t) for r in self.row_offsets for c in self.col_offsets]

    def __len__(self) -> int:
        return len(self.col_offsets) * len(self.row_offsets)


def plan_tiles(width: int, height: int, tile_size_px: int, overlap_px: int,
               align_px: int = 1, context_px: int = 0) -> TilePlan:
    """Make the tiling plan of a scene.

    Args:
        width: Scene width in pixels (>= 1).
        height: Scene height in pixels (>= 1).
        tile_size_px: Tile edge in pixels.
        overlap_px: Overlap in pixels, smaller than ``tile_size_px``.
        align_px: Offsets are multiples of this (px; the model's ``pad_multiple``).
        context_px: The model's measured context (px; 0 when unknown), which
            sets the blending margin (:func:`blend_margin`).

    Returns:
        A :class:`TilePlan` whose windows cover every pixel at least once.

    Raises:
        TilingError: for an invalid tile/overlap pair or an empty scene.
    """
    if width < 1 or height < 1:
        raise TilingError(f"scene size {width}x{height} px has no pixels to tile")
    align_px = max(1, int(align_px))
    overlap = tile_size_px - aligned_stride(tile_size_px, overlap_px, align_px)
    return TilePlan(
        width=width,
        height=height,
        tile_size_px=tile_size_px,
        overlap_px=overlap,
        col_offsets=tuple(axis_offsets(width, tile_size_px, overlap_px, align_px)),
        row_offsets=tuple(axis_offsets(height, tile_size_px, overlap_px, align_px)),
        align_px=align_px,
        margin_px=blend_margin(overlap, context_px),
    )


def padded_size(size_px: int, multiple: int) -> int:
    """Smallest multiple of ``multiple`` that is >= ``size_px``.

    A tile of 250 px through a network that needs multiples of 32 is padded
    to 256 px and cropped back after the forward pass.
    """
    if multiple <= 1:
        return size_px
    return -(-size_px // multiple) * multiple
