"""Where a training window falls in its scene.

Windows are drawn outside the scene's validation window when they fit
(:func:`sample_origin`); :mod:`geounet.training.windows` reads them.
"""

from __future__ import annotations

import numpy as np
from rasterio.windows import Window


def sample_origin(rng: np.random.Generator, width: int, height: int, t: int,
                  val: Window | None) -> tuple[int, int]:
    """Random tile origin, outside the validation window when possible.

    Up to 100 draws; the last one is kept when none misses the window.

    Args:
        rng: Random generator (two integers per draw).
        width: Scene width in pixels.
        height: Scene height in pixels.
        t: Tile size in pixels.
        val: Validation window, or ``None``.

    Returns:
        ``(row, col)`` of the tile's top-left pixel.
    """
    for _ in range(100):
        r0 = int(rng.integers(0, max(1, height - t + 1)))
        c0 = int(rng.integers(0, max(1, width - t + 1)))
        if val is None:
            return r0, c0
        vr0, vc0 = int(val.row_off), int(val.col_off)
        vr1, vc1 = vr0 + int(val.height), vc0 + int(val.width)
        if r0 + t <= vr0 or r0 >= vr1 or c0 + t <= vc0 or c0 >= vc1:
            return r0, c0
    return r0, c0
