"""Model input of a window: read, scaled, and filled past the scene's edge.

:func:`read_scaled` is the one way windows become model input, for runs, the
context measurement, the full-context reference and quantisation calibration.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from rasterio.windows import Window


def reflect_past_edge(x: np.ndarray, window: Window, width: int, height: int) -> np.ndarray:
    """Fill the part of a tile past the scene's edge with a reflection of the part inside.

    A tile of an aligned plan may reach a few pixels past the scene's right or
    bottom edge (and a scene smaller than a tile leaves it short). Those
    pixels have no data; a constant there is an edge the model never saw in
    training, and it predicts false objects along it. A reflection (numpy's
    ``"reflect"``, as the predictors pad tiles to the model's pad multiple)
    continues the scene instead. Nodata inside the scene is left as it is.

    Args:
        x: ``(bands, t, t)`` scaled tile.
        window: Its window (scene pixels).
        width: Scene width (px).
        height: Scene height (px).

    Returns:
        ``x``, filled in place where the window reaches past the scene.
    """
    c0, r0 = int(window.col_off), int(window.row_off)
    h, w = x.shape[1:]
    keep_h, keep_w = min(h, height - r0), min(w, width - c0)
    if (keep_h, keep_w) == (h, w) or keep_h < 1 or keep_w < 1 or r0 < 0 or c0 < 0:
        return x
    x[:] = reflect_pad(x[:, :keep_h, :keep_w], h - keep_h, w - keep_w)
    return x


def reflect_pad(x: np.ndarray, pad_h: int, pad_w: int) -> np.ndarray:
    """Pad ``(bands, h, w)`` at the bottom and right by reflection (edge values for 1 px).

    Returns:
        ``(bands, h + pad_h, w + pad_w)``, a new array.
    """
    pad = ((0, 0), (0, pad_h), (0, pad_w))
    if min(x.shape[1:]) > 1:
        return np.pad(x, pad, mode="reflect")
    return np.pad(x, pad, mode="edge")


def read_scaled(scene: Any, window: Window,
                scaler: Callable[[np.ndarray, np.ndarray], np.ndarray]
                ) -> tuple[np.ndarray, np.ndarray]:
    """Read a window of a scene and turn it into model input.

    Args:
        scene: An open :class:`~geounet.io.read.Scene`.
        window: The window (scene pixels; may reach past the edge).
        scaler: ``(data, valid) -> scaled`` (the model's input scaler).

    Returns:
        ``(x, valid)``: ``(bands, h, w)`` float32 scaled input, reflected past
        the scene's edge (:func:`reflect_past_edge`), and ``(h, w)`` bool validity.
    """
    data, valid = scene.read(window)
    return reflect_past_edge(scaler(data, valid), window, scene.width, scene.height), valid
