import numpy as np
import pytest

from geounet.pipeline.stitch import StripStitcher, axis_weights, stitch_to_array, tile_weights
from geounet.pipeline.tiling import plan_tiles

CASES = [(900, 900, 256, 32), (300, 200, 64, 16), (50, 40, 64, 16), (1000, 130, 128, 100),
         (129, 257, 64, 0)]


def crop(field, win, t):
    r, c = int(win.row_off), int(win.col_off)
    out = np.zeros((field.shape[0], t, t), np.float32)
    sub = field[:, r : r + t, c : c + t]
    out[:, : sub.shape[1], : sub.shape[2]] = sub
    return out


@pytest.mark.parametrize("w,h,tile,overlap", CASES)
def test_constant_stitches_to_constant(w, h, tile, overlap):
    plan = plan_tiles(w, h, tile, overlap)
    tiles = ((win, np.full((2, tile, tile), 0.7, np.float32)) for win in plan.windows)
    probs, covered = stitch_to_array(plan, 2, tiles)
    assert covered.all()
    assert np.abs(probs - 0.7).max() < 1e-6


@pytest.mark.parametrize("w,h,tile,overlap", CASES)
def test_exact_tiles_reproduce_the_field_without_seams(w, h, tile, overlap):
    """When every tile predicts the true field, blending returns it exactly."""
    rng = np.random.default_rng(1)
    field = rng.random((1, h, w)).astype(np.float32)
    plan = plan_tiles(w, h, tile, overlap)
    probs, _ = stitch_to_array(plan, 1, ((win, crop(field, win, tile)) for win in plan.windows))
    np.testing.assert_allclose(probs, field, atol=1e-5)


def test_disagreeing_tiles_blend_smoothly():
    """Two tiles predicting 0 and 1 meet in a ramp, not a step."""
    plan = plan_tiles(192, 64, 128, 64)  # two tiles side by side, 64 px overlap
    assert len(plan) == 2
    a, b = plan.windows
    probs, _ = stitch_to_array(plan, 1, [(a, np.zeros((1, 128, 128), np.float32)),
                                          (b, np.ones((1, 128, 128), np.float32))])
    row = probs[0, 32]
    assert np.all(row[:64] == 0) and np.all(row[128:] == 1)
    steps = np.diff(row[64:128])
    assert np.all(steps >= -1e-7) and steps.max() < 0.1  # monotone, no jump


def test_scene_edges_have_full_weight():
    plan = plan_tiles(300, 200, 64, 16)
    for win in plan.windows:
        w = tile_weights(win, plan)
        r, c = int(win.row_off), int(win.col_off)
        if r == 0:
            assert np.all(w[0, 16:48] == 1)
        if c == 0:
            assert np.all(w[16:48, 0] == 1)
        assert w.min() > 0


def test_axis_weights_ramp():
    w = axis_weights(64, 16, at_start=False, at_end=False)
    assert w[0] > 0 and w[0] < 0.01 and w[32] == 1 and w[-1] == w[0]
    assert np.all(axis_weights(64, 0, False, False) == 1)


def test_streaming_keeps_one_strip_and_emits_rows_once():
    plan = plan_tiles(200, 700, 64, 16)
    rows_seen = []
    peak = []

    def on_rows(r0, probs, covered):
        rows_seen.extend(range(r0, r0 + probs.shape[1]))

    st = StripStitcher(plan, 3, on_rows)
    for win in plan.windows:
        st.add(win, np.full((3, 64, 64), 0.25, np.float32))
        peak.append(st._acc.nbytes)
    st.finish()
    assert rows_seen == list(range(700))
    assert max(peak) == 3 * 64 * 200 * 4  # strip of one tile height, never the whole scene


def test_skipped_tiles_leave_uncovered_rows():
    plan = plan_tiles(128, 320, 64, 0)
    kept = [w for w in plan.windows if int(w.row_off) not in (64, 128)]
    probs, covered = stitch_to_array(plan, 1, ((w, np.ones((1, 64, 64), np.float32)) for w in kept))
    assert not covered[64:192].any() and covered[:64].all() and covered[192:].all()
    assert np.all(probs[0, 64:192] == 0) and np.all(probs[0, 192:] == 1)


def test_tiles_out_of_order_are_refused():
    plan = plan_tiles(128, 256, 64, 0)
    st = StripStitcher(plan, 1, lambda *a: None)
    st.add(plan.windows[-1], np.zeros((1, 64, 64), np.float32))
    with pytest.raises(ValueError):
        st.add(plan.windows[0], np.zeros((1, 64, 64), np.float32))


def test_margin_weights_are_complementary_across_the_overlap():
    from geounet.pipeline.stitch import MARGIN_WEIGHT

    tile, overlap, margin = 256, 112, 48
    a = axis_weights(tile, overlap, at_start=True, at_end=False, margin_px=margin)
    b = axis_weights(tile, overlap, at_start=False, at_end=True, margin_px=margin)
    assert np.all(a[-margin:] == np.float32(MARGIN_WEIGHT)) and np.all(b[:margin] == np.float32(MARGIN_WEIGHT))
    # a's ramp-down lies on b's ramp-up: over the overlap the two sum to 1 (+ the margin floor)
    total = a[tile - overlap:] + b[:overlap]
    assert np.allclose(total, 1, atol=2 * MARGIN_WEIGHT)
    # inside the overlap every pixel gets >= 99.98 % of its weight from predictions at least
    # `margin` px from that tile's interior edge
    far_a = np.arange(tile - overlap, tile) < tile - margin
    far_b = np.arange(overlap) >= margin
    good = a[tile - overlap:] * far_a + b[:overlap] * far_b
    assert np.all(good / total > 0.9998)


def test_constant_stitches_to_constant_with_a_margin():
    plan = plan_tiles(650, 470, 256, 112, align_px=16, context_px=48)
    probs, covered = stitch_to_array(
        plan, 1, ((win, np.full((1, 256, 256), 0.25, np.float32)) for win in plan.windows))
    assert covered.all() and np.allclose(probs, 0.25, atol=1e-6)
