"""Stage 2 - tile: the plan of overlapping windows that covers a scene.

Tiles are ``tile_size_px`` square windows placed every ``stride = tile_size_px -
overlap_px`` pixels along each axis. The last tile of a row/column is shifted
back so that it ends on the scene's edge (so no tile hangs outside a scene that
is at least one tile large, and no pixel is left out). Along an axis shorter
than one tile the single tile starts at 0 and reaches past the edge; the reader
pads it with a boundless read.

The plan is ordered row-major (all tiles of a tile row, left to right, then the
next row), which the streaming stitcher relies on.
"""

from __future__ import annotations

from dataclasses import dataclass

from rasterio.windows import Window

from geounet.config import TilingConfig
from geounet.errors import TilingError


def axis_offsets(length_px: int, tile_px: int, overlap_px: int) -> list[int]:
    """Tile start offsets along one axis.

    Args:
        length_px: Scene size along the axis, in pixels (>= 1).
        tile_px: Tile size in pixels.
        overlap_px: Overlap in pixels (``0 <= overlap_px < tile_px``).

    Returns:
        Sorted, unique offsets in pixels. The first is 0; the last is
        ``max(0, length_px - tile_px)``, so ``offset + tile_px >= length_px``.

    Raises:
        TilingError: for an invalid tile/overlap pair.
    """
    TilingConfig(tile_px, overlap_px)
    stride = tile_px - overlap_px
    last = max(0, length_px - tile_px)
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
        overlap_px: Nominal overlap between neighbours in pixels.
        col_offsets: Column offsets of tiles (pixels).
        row_offsets: Row offsets of tile rows (pixels).
    """

    width: int
    height: int
    tile_size_px: int
    overlap_px: int
    col_offsets: tuple[int, ...]
    row_offsets: tuple[int, ...]

    @property
    def windows(self) -> list[Window]:
        """All tile windows, row-major; each is ``tile_size_px`` square."""
        t = self.tile_size_px
        return [Window(c, r, t, t) for r in self.row_offsets for c in self.col_offsets]

    def __len__(self) -> int:
        return len(self.col_offsets) * len(self.row_offsets)


def plan_tiles(width: int, height: int, tile_size_px: int, overlap_px: int) -> TilePlan:
    """Make the tiling plan of a scene.

    Args:
        width: Scene width in pixels (>= 1).
        height: Scene height in pixels (>= 1).
        tile_size_px: Tile edge in pixels.
        overlap_px: Overlap in pixels, smaller than ``tile_size_px``.

    Returns:
        A :class:`TilePlan` whose windows cover every pixel at least once.

    Raises:
        TilingError: for an invalid tile/overlap pair or an empty scene.
    """
    if width < 1 or height < 1:
        raise TilingError(f"scene size {width}x{height} px has no pixels to tile")
    return TilePlan(
        width=width,
        height=height,
        tile_size_px=tile_size_px,
        overlap_px=overlap_px,
        col_offsets=tuple(axis_offsets(width, tile_size_px, overlap_px)),
        row_offsets=tuple(axis_offsets(height, tile_size_px, overlap_px)),
    )


def padded_size(size_px: int, multiple: int) -> int:
    """Smallest multiple of ``multiple`` that is >= ``size_px``.

    A tile of 250 px through a network that needs multiples of 32 is padded
    to 256 px and cropped back after the forward pass.
    """
    if multiple <= 1:
        return size_px
    return -(-size_px // multiple) * multiple
