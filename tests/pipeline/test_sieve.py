"""The strip-by-strip sieve equals one sieve over the whole class raster."""

import numpy as np
import pytest

from geounet.pipeline.sieve import StripSieve, sieve_classes
from geounet.pipeline.strips import Strip


class Rows:
    """A last strip stage calling ``on_rows(row_off, classes, probs, valid)``."""

    def __init__(self, on_rows):
        self.on_rows, self.finished = on_rows, False

    def add(self, strip):
        self.on_rows(strip.row_off, strip.classes, strip.probs, strip.valid)

    def finish(self):
        self.finished = True

    def abort(self):
        pass


def speckled(seed, h=240, w=180, classes=4):
    """Blocks of classes with speckle of every size, nodata holes, long thin lines."""
    rng = np.random.default_rng(seed)
    cls = rng.integers(0, classes, (h // 20, w // 20)).repeat(20, 0).repeat(20, 1)
    cls = cls.astype(np.uint8)
    for _ in range(400):  # specks of 1..30 px
        r, c = rng.integers(0, h - 6), rng.integers(0, w - 6)
        cls[r : r + rng.integers(1, 6), c : c + rng.integers(1, 6)] = rng.integers(0, classes)
    cls[30:200, 50] = 3  # a line of 170 px spanning many strips
    valid = rng.random((h, w)) > 0.02
    valid[100:120, 100:140] = False
    cls[~valid] = 255
    return cls, valid


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("size,conn", [(2, 4), (9, 4), (25, 8), (60, 4)])
def test_strip_sieve_equals_whole_sieve(seed, size, conn):
    cls, valid = speckled(seed)
    ref = sieve_classes(cls, size, valid, conn)
    assert (ref != cls).sum() > 0  # the sieve did something
    got = np.full_like(cls, 254)
    probs = np.random.default_rng(seed).random((2, *cls.shape)).astype(np.float32)
    seen = []

    def on_rows(row_off, c, p, v):
        seen.append(row_off)
        got[row_off : row_off + c.shape[0]] = c
        assert np.array_equal(p, probs[:, row_off : row_off + c.shape[0]])
        assert np.array_equal(v, valid[row_off : row_off + c.shape[0]])

    sink = Rows(on_rows)
    sv = StripSieve(size, conn, sink)
    rng = np.random.default_rng(seed + 10)
    r0 = 0
    while r0 < cls.shape[0]:
        n = int(min(rng.integers(1, 70), cls.shape[0] - r0))
        sv.add(Strip(r0, probs[:, r0 : r0 + n], valid[r0 : r0 + n], cls[r0 : r0 + n]))
        r0 += n
    sv.finish()
    assert sink.finished
    assert seen == sorted(seen) and seen[0] == 0
    # which pixels are sieved is exact; the class they take may differ only where two
    # neighbours are both cut by the context window (none here with a 4x halo)
    assert np.array_equal(got != cls, ref != cls)
    assert np.mean(got != ref) < 1e-3
    assert np.array_equal(got[~valid], cls[~valid])  # nodata untouched


def test_strip_sieve_rejects_gaps():
    sv = StripSieve(4, 4, Rows(lambda *a: None))
    sv.add(Strip(0, np.zeros((1, 5, 4)), np.ones((5, 4), bool), np.zeros((5, 4), np.uint8)))
    with pytest.raises(ValueError, match="does not follow"):
        sv.add(Strip(7, np.zeros((1, 5, 4)), np.ones((5, 4), bool), np.zeros((5, 4), np.uint8)))


def test_pipeline_sieve_is_a_minimum_mapping_unit(tmp_path):
    from builders import LANDSAT_SCENE
    from geounet.config import TilingConfig, VectorizeConfig
    from geounet.pipeline import predict_scene

    tiling = TilingConfig(64, 16)  # many strips
    a = predict_scene(LANDSAT_SCENE, None, model="landcover-landsat7", tiling=tiling,
                      keep_arrays=True)
    b = predict_scene(LANDSAT_SCENE, None, model="landcover-landsat7", tiling=tiling,
                      keep_arrays=True, vectorize=VectorizeConfig(sieve_m2=5000))
    valid = a.classes != 255
    ref = sieve_classes(a.classes, int(np.ceil(5000 / 28.5**2)), valid)
    assert np.array_equal(b.classes != a.classes, ref != a.classes)
    assert np.mean(b.classes != ref) < 1e-3
    assert (b.classes != a.classes).sum() > 1000
    assert b.n_polygons < a.n_polygons / 2
    # a sieve reassigns pixels, it does not drop them: the polygons still cover every pixel
    assert b.footprints.area.sum() == pytest.approx(valid.sum() * 28.5**2)
    assert b.footprints.area_m2.min() >= 7 * 28.5**2 - 1e-6  # every region has >= 7 px
