"""Rectangular regions of a scene, for held-out validation and scoring.

A region is written as one of:

* ``east:F`` / ``west:F`` / ``north:F`` / ``south:F`` - that side's fraction
  ``0 < F < 1`` of the scene (``east:0.25`` is the eastern quarter);
* a bare fraction ``F`` - the same as ``east:F``;
* ``px:COL0,ROW0,COL1,ROW1`` - pixel bounds (0-based, end exclusive);
* ``map:MINX,MINY,MAXX,MAXY`` - bounds in the scene's CRS units.
"""

from __future__ import annotations

import math

from rasterio.windows import Window, from_bounds

from geounet.errors import RegionError

_SIDES = ("east", "west", "north", "south")


def parse_region(spec: str, width: int, height: int, transform) -> Window:
    """Turn a region string into a pixel window clipped to the scene.

    Args:
        spec: Region string (see the module docstring).
        width: Scene width in pixels.
        height: Scene height in pixels.
        transform: Scene affine transform (for ``map:`` bounds).

    Returns:
        An integer ``rasterio.windows.Window`` inside the scene, non-empty.

    Raises:
        RegionError: if the string cannot be parsed or the region is empty.
    """
    text = str(spec).strip().lower()
    kind, _, rest = text.partition(":")
    if not rest:
        kind, rest = "east", text
    try:
        if kind in _SIDES:
            f = float(rest)
            if not 0 < f < 1:
                raise ValueError(f"fraction {f} is not between 0 and 1")
            if kind in ("east", "west"):
                n = max(1, round(width * f))
                col0 = width - n if kind == "east" else 0
                win = Window(col0, 0, n, height)
            else:
                n = max(1, round(height * f))
                row0 = height - n if kind == "south" else 0
                win = Window(0, row0, width, n)
        elif kind == "px":
            c0, r0, c1, r1 = (int(float(v)) for v in rest.split(","))
            win = Window(c0, r0, c1 - c0, r1 - r0)
        elif kind == "map":
            minx, miny, maxx, maxy = (float(v) for v in rest.split(","))
            w = from_bounds(minx, miny, maxx, maxy, transform)
            c0, r0 = math.floor(w.col_off + 1e-6), math.floor(w.row_off + 1e-6)
            c1 = math.ceil(w.col_off + w.width - 1e-6)
            r1 = math.ceil(w.row_off + w.height - 1e-6)
            win = Window(c0, r0, c1 - c0, r1 - r0)
        else:
            raise ValueError(f"unknown region kind {kind!r}")
    except ValueError as exc:
        raise RegionError(
            f"region {spec!r} is not understood ({exc}): expected east:F, west:F, north:F, "
            "south:F, px:COL0,ROW0,COL1,ROW1 or map:MINX,MINY,MAXX,MAXY"
        ) from None
    c0 = max(0, int(win.col_off))
    r0 = max(0, int(win.row_off))
    c1 = min(width, int(win.col_off + win.width))
    r1 = min(height, int(win.row_off + win.height))
    if c1 <= c0 or r1 <= r0:
        raise RegionError(
            f"region {spec!r} does not overlap the {width}x{height} px scene; give bounds "
            "inside it"
        )
    return Window(c0, r0, c1 - c0, r1 - r0)


def window_slices(window: Window) -> tuple[slice, slice]:
    """``(rows, cols)`` slices of an integer window."""
    r0, c0 = int(window.row_off), int(window.col_off)
    return slice(r0, r0 + int(window.height)), slice(c0, c0 + int(window.width))
