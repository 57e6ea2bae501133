"""geounet.metrics: pure figures of arrays and geometries (pixel, SpaceNet, confusion matrix)."""

import numpy as np
import pytest
import shapely

from geounet.metrics import (
    class_metrics,
    confusion_matrix,
    iou_from_labels,
    match_footprints,
    pixel_metrics,
)


def test_spacenet_matching_counts():
    truth = [shapely.box(0, 0, 10, 10), shapely.box(20, 0, 30, 10), shapely.box(40, 0, 50, 10)]
    pred = [
        shapely.box(0, 0, 10, 10),        # IoU 1
        shapely.box(22, 0, 32, 10),       # IoU 8/12 = 0.667
        shapely.box(46, 0, 56, 10),       # IoU 4/16 = 0.25 -> no match
        shapely.box(70, 70, 80, 80),      # nothing there
    ]
    m = match_footprints(pred, truth)
    assert (m.tp, m.fp, m.fn) == (2, 2, 1)
    assert m.precision == 0.5 and m.recall == pytest.approx(2 / 3)
    assert m.f1 == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert m.mean_iou_matched == pytest.approx((1 + 2 / 3) / 2)


def test_one_to_one_matching():
    truth = [shapely.box(0, 0, 10, 10)]
    pred = [shapely.box(0, 0, 10, 10), shapely.box(0, 0, 10, 9)]  # two claims on one building
    m = match_footprints(pred, truth)
    assert (m.tp, m.fp, m.fn) == (1, 1, 0)


def test_pixel_metrics():
    p = np.array([[1, 1, 0, 0]], bool)
    t = np.array([[1, 0, 1, 0]], bool)
    m = pixel_metrics(p, t)
    assert (m.tp, m.fp, m.fn) == (1, 1, 1)
    assert m.iou == pytest.approx(1 / 3) and m.f1 == pytest.approx(0.5)


def test_iou_from_labels_binary_and_multiclass():
    truth = np.array([[0, 1, 1, 255]], np.uint8)
    pred = np.array([[1, 1, 0, 1]])
    assert iou_from_labels(pred, truth, 2) == pytest.approx(1 / 3)  # the nodata pixel is left out
    # no background class: mean IoU over the classes present (0: 0/2, 1: 1/3)
    assert iou_from_labels(pred, truth, 2, background=None) == pytest.approx((0 + 1 / 3) / 2)
    cm = confusion_matrix(np.array([1, 1, 0]), np.array([0, 1, 1]), 2)
    assert class_metrics(cm, ["a", "b"]).mean_iou == pytest.approx((0 + 1 / 3) / 2)


def test_evaluate_names_moved_to_geounet_evaluation():
    import geounet.evaluation
    import geounet.metrics

    for name in ("evaluate", "evaluate_classes", "held_out_selection"):
        with pytest.warns(DeprecationWarning, match=f"geounet.evaluation.{name}"):
            assert getattr(geounet.metrics, name) is getattr(geounet.evaluation, name)
    with pytest.warns(DeprecationWarning):
        assert ".tif" in geounet.metrics.RASTER_EXTS
