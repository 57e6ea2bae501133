"""Training batches: random tiles of the scene, with random flips and 90-degree rotations.

Tiles are drawn outside the validation window when they fit; a tile that runs
past the scene's edge is padded (inputs with 0, labels with
:data:`~geounet.constants.CLASS_NODATA`, left out of the loss).
"""

from __future__ import annotations

import numpy as np
from rasterio.windows import Window

from geounet.constants import CLASS_NODATA


def augment(x: np.ndarray, y: np.ndarray,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Rotate a tile and its labels by a random multiple of 90 degrees, then flip half of them.

    Args:
        x: ``(c, t, t)`` input tile.
        y: ``(t, t)`` labels of the tile.
        rng: Random generator (draws one integer and one float).

    Returns:
        ``(x, y)`` transformed alike, C-contiguous, same shapes and dtypes.
    """
    k = int(rng.integers(4))
    x, y = np.rot90(x, k, axes=(1, 2)), np.rot90(y, k, axes=(0, 1))
    if rng.random() < 0.5:
        x, y = x[:, :, ::-1], y[:, ::-1]
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


def crop(arr: np.ndarray, r0: int, c0: int, t: int, fill: float) -> np.ndarray:
    """A ``t`` x ``t`` window of the last two axes, padded with ``fill`` past the edge.

    Args:
        arr: ``(..., h, w)`` array.
        r0: First row in pixels.
        c0: First column in pixels.
        t: Tile size in pixels.
        fill: Value of the padding.

    Returns:
        ``(..., t, t)`` array of ``arr``'s dtype.
    """
    sub = arr[..., r0 : r0 + t, c0 : c0 + t]
    ph, pw = t - sub.shape[-2], t - sub.shape[-1]
    if ph or pw:
        pad = [(0, 0)] * (sub.ndim - 2) + [(0, ph), (0, pw)]
        sub = np.pad(sub, pad, constant_values=fill)
    return sub


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


def sample_batch(rng: np.random.Generator, scaled: np.ndarray, labels: np.ndarray, t: int,
                 batch_size: int, val: Window | None) -> tuple[np.ndarray, np.ndarray]:
    """A batch of random augmented tiles and their labels.

    Args:
        rng: Random generator.
        scaled: ``(c, h, w)`` float32 scaled scene.
        labels: ``(h, w)`` uint8 training labels (``CLASS_NODATA``: not trained on).
        t: Tile size in pixels.
        batch_size: Tiles in the batch.
        val: Validation window kept out of the tiles when possible, or ``None``.

    Returns:
        ``(x, y)``: ``(batch_size, c, t, t)`` float32 and ``(batch_size, t, t)`` int64.
    """
    height, width = labels.shape
    xs, ys = [], []
    for _ in range(batch_size):
        r0, c0 = sample_origin(rng, width, height, t, val)
        x, y = augment(crop(scaled, r0, c0, t, 0.0), crop(labels, r0, c0, t, CLASS_NODATA), rng)
        xs.append(x)
        ys.append(y)
    return np.stack(xs), np.stack(ys).astype(np.int64)
