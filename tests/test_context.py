"""The context measurement (geounet.context) on predictors whose context is known."""

import numpy as np
import pytest

from geounet.context import (
    context_from_histogram,
    edge_distance,
    measure_regions,
    measure_stride,
    recommend_tiling,
)
from geounet.errors import InvalidOptionError
from geounet.measure_context import synthetic_regions


def box_predictor(radius, position_term=0.0):
    """sigmoid(4 * mean over a (2r+1)^2 box, zero padded): context exactly ``radius`` px.

    ``position_term`` adds a term that grows with the column inside the tile, which no
    tiling can make consistent (like ``align_corners=True``).
    """
    def predict(batch):
        b, c, h, w = batch.shape
        x = np.pad(batch.mean(axis=1), ((0, 0), (radius, radius), (radius, radius)))
        s = x.cumsum(1).cumsum(2)
        s = np.pad(s, ((0, 0), (1, 0), (1, 0)))
        k = 2 * radius + 1
        box = (s[:, k:, k:] - s[:, :-k, k:] - s[:, k:, :-k] + s[:, :-k, :-k]) / k**2
        logit = 4 * box + position_term * np.linspace(-1, 1, w)[None, None, :]
        return (1 / (1 + np.exp(-logit)))[:, None].astype(np.float32)
    return predict


@pytest.mark.parametrize("radius", [5, 12, 23])
def test_box_filter_context_is_its_radius(radius):
    regions = synthetic_regions(2, 128 + 4 * 16, 3, seed=1)
    m = measure_regions(regions, box_predictor(radius), 128, 8)
    assert m.converged
    # at d >= radius the box never reaches past the tile: |dp| is 0 there
    assert radius - 3 <= m.context_px <= radius, m.profile
    assert max(m.profile[radius:]) <= 1e-3


def test_a_position_dependent_model_does_not_converge():
    regions = synthetic_regions(1, 128 + 4 * 16, 2, seed=0)
    m = measure_regions(regions, box_predictor(3, position_term=1.0), 128, 8)
    assert not m.converged and m.context_px == m.measurable_px


def test_histogram_percentile_and_context():
    hist = np.zeros((10, 2000), np.int64)
    hist[:, 0] = 100          # |dp| ~ 0 everywhere ...
    hist[:4, 1000] = 5        # ... but 5 % at |dp| 0.5 within 4 px of the edge
    context, converged, profile = context_from_histogram(hist, percentile=99, tol_dp=0.01)
    assert context == 4 and converged
    assert profile[3] > 0.4 and profile[4] < 0.01


def test_edge_distance_and_stride():
    d = edge_distance(6)
    assert d[0].tolist() == [0] * 6 and d[2].tolist() == [0, 1, 2, 2, 1, 0]
    assert measure_stride(256, 16) == 32 and measure_stride(128, 32) == 32
    with pytest.raises(InvalidOptionError, match="multiple of its pad multiple 32"):
        measure_stride(200, 32)


def test_recommend_tiling_grows_the_tile_with_the_context():
    assert recommend_tiling(48, 16, 256) == (512, 112)
    assert recommend_tiling(0, 16, 256) == (256, 16)
    tile, overlap = recommend_tiling(200, 32, 256)
    assert tile == 1024 and overlap == 416
    assert recommend_tiling(48, 16, 256, max_tile_px=256) == (256, 112)
