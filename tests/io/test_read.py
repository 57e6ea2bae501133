import numpy as np
import pytest
from rasterio.windows import Window

from builders import write_geotiff
from geounet.errors import BandCountError, BandIndexError, InputNotFoundError, MissingCRSError, NotARasterError
from geounet.io.read import BandScaler, Scene, band_statistics, parse_bands


def test_band_selection_order_and_boundless(tmp_path):
    data = np.stack([np.full((20, 30), v, np.uint8) for v in (10, 20, 30)])
    path = write_geotiff(tmp_path / "s.tif", data)
    with Scene(path, bands=[3, 1]) as sc:
        x, valid = sc.read(Window(20, 10, 16, 16))  # reaches past the right and bottom edges
    assert x.shape == (2, 16, 16) and x.dtype == np.float32
    assert np.all(x[0, :10, :10] == 30) and np.all(x[1, :10, :10] == 10)
    assert valid[:10, :10].all() and not valid[10:].any() and not valid[:, 10:].any()
    assert np.all(x[:, 10:] == 0)


def test_nodata_is_invalid(tmp_path):
    data = np.full((10, 10), 7, np.uint16)
    data[2:4, 5:9] = 0
    path = write_geotiff(tmp_path / "s.tif", data, nodata=0)
    with Scene(path) as sc:
        _, valid = sc.read(Window(0, 0, 10, 10))
        assert valid.sum() == 100 - 8 and not valid[2:4, 5:9].any()
        assert np.array_equal(sc.read_valid(Window(0, 0, 10, 10)), valid)


def test_default_bands_from_model_and_count_check(tmp_path):
    path = write_geotiff(tmp_path / "s.tif", np.zeros((2, 5, 5), np.uint8))
    with Scene(path, default_bands=[2], n_expected=1) as sc:
        assert sc.bands == [2]
    with pytest.raises(BandCountError, match="has 2 band"):
        Scene(path, default_bands=[1, 2, 3], n_expected=3)
    with pytest.raises(BandCountError, match="expects 1"):
        Scene(path, bands=[1, 2], n_expected=1)
    with pytest.raises(BandIndexError, match="band 5 is out of range"):
        Scene(path, bands=[5])


def test_open_errors(tmp_path):
    with pytest.raises(InputNotFoundError):
        Scene(tmp_path / "nope.tif")
    bad = tmp_path / "bad.tif"
    bad.write_text("not a raster")
    with pytest.raises(NotARasterError) as e:
        Scene(bad)
    assert isinstance(e.value, OSError)
    nocrs = write_geotiff(tmp_path / "nocrs.tif", np.zeros((5, 5), np.uint8), crs=None)
    with pytest.raises(MissingCRSError, match="no CRS"):
        Scene(nocrs)


def test_scaling_uses_stored_statistics():
    data = np.array([[[10.0, 20.0], [30.0, 40.0]]], np.float32)
    valid = np.array([[True, True], [True, False]])
    mean, std = band_statistics(data, valid)
    assert mean == [20.0] and std[0] == pytest.approx(np.std([10, 20, 30]))
    out = BandScaler([20.0], [10.0])(data, valid)
    np.testing.assert_allclose(out[0], [[-1, 0], [1, 0]])


def test_parse_bands():
    assert parse_bands("1,2,3") == [1, 2, 3]
    assert parse_bands(None) is None
    with pytest.raises(BandIndexError):
        parse_bands("red")


def test_gsd_geographic_and_projected(tmp_path):
    from rasterio.transform import from_origin

    p = write_geotiff(tmp_path / "g.tif", np.zeros((5, 5), np.uint8), crs="EPSG:4326",
                      transform=from_origin(-84.5, 33.7, 1e-5, 1e-5))
    with Scene(p) as sc:
        assert 0.9 < sc.gsd_m() < 1.11
    p2 = write_geotiff(tmp_path / "p.tif", np.zeros((5, 5), np.uint8))
    with Scene(p2) as sc:
        assert sc.gsd_m() == 0.5


def test_float_nan_is_invalid_in_read_and_read_valid(tmp_path):
    data = np.ones((2, 10, 12), np.float32)
    data[0, 3, 4] = np.nan
    data[1, 9, 11] = np.inf
    path = write_geotiff(tmp_path / "f.tif", data)  # no nodata value: only NaN/inf mark gaps
    with Scene(path) as sc:
        inside = sc.read_valid(Window(0, 0, 12, 10))
        assert not inside[3, 4] and not inside[9, 11] and inside.sum() == 118
        x, valid = sc.read(Window(4, 2, 16, 16))  # boundless: reaches past the edges
        assert not valid[1, 0] and not valid[7, 7] and valid[0, 0]
        assert np.isfinite(x).all() and x[0, 1, 0] == 0
        assert np.array_equal(valid[:8, :8], inside[2:, 4:])
