"""geounet.io.padding: tiles past the scene's edge continue the scene by reflection."""

import numpy as np
from rasterio.windows import Window

from geounet.io.padding import reflect_past_edge


def test_a_tile_past_the_right_and_bottom_edge_is_reflected():
    x = np.zeros((1, 8, 8), np.float32)
    x[0, :6, :5] = np.arange(30).reshape(6, 5)
    out = reflect_past_edge(x.copy(), Window(95, 94, 8, 8), width=100, height=100)
    assert np.array_equal(out[0, :6, :5], x[0, :6, :5])  # the inside is kept
    assert np.array_equal(out[0, :6, 5], x[0, :6, 3])  # column 100 mirrors column 98
    assert np.array_equal(out[0, 6, :5], x[0, 4, :5])  # row 100 mirrors row 98


def test_a_tile_inside_the_scene_is_unchanged():
    x = np.random.default_rng(0).random((2, 8, 8)).astype(np.float32)
    assert np.array_equal(reflect_past_edge(x.copy(), Window(10, 10, 8, 8), 100, 100), x)


def test_a_one_pixel_wide_scene_repeats_its_edge():
    x = np.zeros((1, 4, 4), np.float32)
    x[0, :, 0] = [1, 2, 3, 4]
    out = reflect_past_edge(x, Window(0, 0, 4, 4), width=1, height=4)
    assert np.array_equal(out[0], np.repeat(np.array([[1], [2], [3], [4]], np.float32), 4, 1))
