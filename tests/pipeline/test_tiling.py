import numpy as np
import pytest

from geounet.errors import TilingError
from geounet.pipeline.tiling import axis_offsets, padded_size, plan_tiles


@pytest.mark.parametrize(
    "w,h,tile,overlap",
    [(900, 900, 256, 32), (1000, 37, 128, 16), (50, 40, 256, 32), (257, 513, 256, 0),
     (256, 256, 256, 64), (1, 1, 64, 8), (700, 300, 100, 99)],
)
def test_plan_covers_every_pixel(w, h, tile, overlap):
    plan = plan_tiles(w, h, tile, overlap)
    cover = np.zeros((h, w), int)
    for win in plan.windows:
        assert win.width == win.height == tile
        r, c = int(win.row_off), int(win.col_off)
        assert r >= 0 and c >= 0
        cover[r : r + tile, c : c + tile] += 1
    assert cover.min() >= 1
    # tiles stay inside a scene at least one tile large
    if w >= tile:
        assert max(c + tile for c in plan.col_offsets) == w
    if h >= tile:
        assert max(r + tile for r in plan.row_offsets) == h


def test_plan_stride_and_order():
    plan = plan_tiles(1000, 600, 256, 56)
    assert plan.col_offsets == (0, 200, 400, 600, 744)
    assert plan.row_offsets == (0, 200, 344)
    rows = [int(w.row_off) for w in plan.windows]
    assert rows == sorted(rows)  # row-major
    assert len(plan) == 15


def test_small_scene_single_tile():
    plan = plan_tiles(50, 40, 256, 32)
    assert len(plan) == 1 and plan.windows[0].col_off == 0


@pytest.mark.parametrize("tile,overlap", [(256, 256), (256, 300), (64, -1), (8, 0)])
def test_bad_tiling_values(tile, overlap):
    with pytest.raises(TilingError) as err:
        axis_offsets(100, tile, overlap)
    assert str(tile) in str(err.value) or str(overlap) in str(err.value)


def test_padded_size():
    assert padded_size(250, 32) == 256
    assert padded_size(256, 32) == 256
    assert padded_size(1, 32) == 32
    assert padded_size(100, 1) == 100
