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


@pytest.mark.parametrize("w,h,tile,overlap,align", [(650, 650, 256, 112, 16), (1000, 37, 128, 50, 32),
                                                    (901, 333, 512, 176, 32), (300, 300, 64, 0, 16)])
def test_aligned_plan_offsets_are_multiples_and_cover(w, h, tile, overlap, align):
    plan = plan_tiles(w, h, tile, overlap, align_px=align)
    offsets = plan.col_offsets + plan.row_offsets
    assert all(o % align == 0 for o in offsets)
    assert plan.overlap_px >= overlap and (tile - plan.overlap_px) % align == 0
    cover = np.zeros((h, w), int)
    for win in plan.windows:
        r, c = int(win.row_off), int(win.col_off)
        cover[r : r + tile, c : c + tile] += 1
    assert cover.min() >= 1
    # the last tile reaches fewer than `align` px past the edge
    assert max(plan.col_offsets) + tile - max(w, tile) < align


def test_blend_margin_is_the_context_when_the_overlap_allows():
    from geounet.pipeline.tiling import MIN_RAMP_PX, blend_margin

    assert blend_margin(112, 48) == 48
    assert blend_margin(2 * 48 + MIN_RAMP_PX - 2, 48) == 47  # too small: the ramp keeps 16 px
    assert blend_margin(32, 0) == 0 and blend_margin(8, 40) == 0
    assert plan_tiles(650, 650, 256, 112, 16, context_px=48).margin_px == 48


def test_an_overlap_below_twice_the_context_warns(caplog):
    from geounet.pipeline.tiling import warn_short_overlap

    with caplog.at_level("WARNING"):
        assert warn_short_overlap(64, 48, "m")
        assert not warn_short_overlap(112, 48, "m") and not warn_short_overlap(32, 0, "m")
    assert len(caplog.records) == 1 and "--overlap 112" in caplog.records[0].getMessage()
