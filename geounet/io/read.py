"""Stage 1 - read: open a scene, choose bands, read scaled windows with masks.

Any raster GDAL/rasterio can open works. A window that reaches past the
scene's edge is read where it overlaps the scene and padded (invalid), so edge
tiles come back full size. Validity comes from GDAL's mask bands
(``read_masks``), which honour a nodata value, an alpha band or an internal
mask alike; a pixel is valid when it is valid in every selected band.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from geounet.errors import (
    BandCountError,
    BandIndexError,
    InputNotFoundError,
    MissingCRSError,
    NotARasterError,
)
from geounet.geometry import pixel_size_m
from geounet.io.padding import read_scaled
from geounet.io.regrid import Grid, ModelGrid, warped

log = logging.getLogger(__name__)

GDAL_CACHE_MB = 64
"""GDAL's raster block cache while geounet reads a scene, in MB. GDAL's default (5 % of
RAM) would keep every block of a scene read once and make memory grow with the scene:
reading an 8192² uint16 scene by windows took 198 MB of RSS with the default and 71 MB
with 64 MB (``docs/performance.md``); geounet reads each block about once, so a small
cache costs nothing."""


def gdal_env():
    """``rasterio.Env`` with geounet's GDAL settings (a bounded block cache)."""
    return rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB)


def parse_bands(text: str | None) -> list[int] | None:
    """Parse a ``--bands`` value such as ``"1,2,3"`` (1-based indexes).

    Raises:
        BandIndexError: for a value that is not a comma-separated list of
            positive integers.
    """
    if text is None or str(text).strip() == "":
        return None
    try:
        bands = [int(b) for b in str(text).split(",")]
    except ValueError:
        raise BandIndexError(
            f"bands {text!r} are not understood: expected 1-based band numbers separated by "
            "commas, e.g. --bands 1,2,3"
        ) from None
    return bands


def open_raster(path: str | os.PathLike):
    """Open a raster with rasterio, turning failures into geounet errors.

    Returns:
        An open ``rasterio.DatasetReader``.

    Raises:
        InputNotFoundError: if ``path`` does not exist (and is not a GDAL
            virtual path such as ``/vsicurl/...``).
        NotARasterError: if GDAL cannot open it as a raster.
    """
    spath = str(path)
    if not spath.startswith("/vsi") and "://" not in spath and not Path(spath).exists():
        raise InputNotFoundError(f"scene {spath!r} does not exist; check the path")
    try:
        return rasterio.open(spath)
    except RasterioIOError as exc:
        raise NotARasterError(
            f"{spath!r} is not a raster GDAL can read ({exc}); pass a GeoTIFF or another "
            "GDAL raster format"
        ) from exc


class Scene:
    """An open scene with its selected bands.

    Args:
        path: Raster path (anything rasterio opens).
        bands: 1-based band indexes to use, in model input order; ``None``
            takes ``default_bands``.
        default_bands: Bands used when ``bands`` is ``None`` (usually the
            model's ``bands``).
        n_expected: Number of bands the model takes; ``None`` skips the check.
        grid: Read the scene on this model-GSD grid (see :meth:`use_grid`).

    Attributes:
        width, height: Size in pixels of the grid the scene is read on (its
            own, or the model-GSD grid after :meth:`use_grid`).
        crs: ``rasterio.crs.CRS`` of the scene.
        transform: Affine transform of that grid, pixel -> CRS coordinates.
        bands: Selected 1-based band indexes.
        dataset: The dataset windows are read from: the file, or a
            ``WarpedVRT`` over it on the model-GSD grid.
        native: The file's own dataset.
        grid: The :class:`~geounet.io.regrid.ModelGrid` in use, or ``None``.

    Raises:
        InputNotFoundError, NotARasterError: see :func:`open_raster`.
        MissingCRSError: if the scene has no CRS.
        BandIndexError: if a band is outside ``1..count``.
        BandCountError: if the number of bands differs from ``n_expected``.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        bands: list[int] | None = None,
        default_bands: list[int] | None = None,
        n_expected: int | None = None,
        grid: ModelGrid | None = None,
    ) -> None:
        self.path = str(path)
        self.dataset = self.native = open_raster(path)
        self.grid: ModelGrid | None = None
        try:
            self._check(bands, default_bands, n_expected)
            if grid is not None:
                self.use_grid(grid)
        except Exception:
            self.native.close()
            raise

    def use_grid(self, grid: ModelGrid) -> None:
        """Read the scene from now on through a ``WarpedVRT`` on the model-GSD grid.

        Sizes, transform, pixel sizes, windows and validity are then those of
        ``grid.grid``; :meth:`native_grid` and :meth:`native_valid` still give
        the file's own.

        Args:
            grid: The grid (:func:`geounet.io.regrid.model_grid`).
        """
        self.dataset = warped(self.native, grid.grid, grid.resampling)
        self.grid = grid

    def native_grid(self) -> Grid:
        """The file's own grid (size, CRS, transform)."""
        ds = self.native
        return Grid(ds.width, ds.height, ds.crs, ds.transform)

    def native_valid(self, window: Window) -> np.ndarray:
        """Validity of a window of the file's own grid: ``(h, w)`` bool (see :meth:`read_valid`)."""
        return self._validity(window, ds=self.native)

    def _check(self, bands, default_bands, n_expected) -> None:
        ds = self.dataset
        if ds.crs is None:
            raise MissingCRSError(
                f"scene {self.path!r} has no CRS: footprints could not be placed on the map; "
                "assign one first, e.g. gdal_edit.py -a_srs EPSG:32616 "
                f"{os.path.basename(self.path)}"
            )
        count = ds.count
        if bands is None:
            bands = list(default_bands) if default_bands else list(range(1, count + 1))
            if any(b > count for b in bands):
                raise BandCountError(
                    f"scene {self.path!r} has {count} band(s) but the model expects "
                    f"{len(bands)} (bands {','.join(map(str, bands))}); pass --bands with "
                    f"{len(bands)} band numbers between 1 and {count}"
                )
        for b in bands:
            if not 1 <= b <= count:
                raise BandIndexError(
                    f"band {b} is out of range: scene {self.path!r} has bands 1..{count}; "
                    "pass --bands with numbers in that range"
                )
        if n_expected is not None and len(bands) != n_expected:
            raise BandCountError(
                f"{len(bands)} band(s) selected ({','.join(map(str, bands))}) but the model "
                f"expects {n_expected}; pass --bands with {n_expected} band numbers"
            )
        self.bands = list(bands)

    @property
    def width(self) -> int:  # noqa: D102
        return self.dataset.width

    @property
    def height(self) -> int:  # noqa: D102
        return self.dataset.height

    @property
    def crs(self):  # noqa: D102
        return self.dataset.crs

    @property
    def transform(self):  # noqa: D102
        return self.dataset.transform

    @property
    def profile(self) -> dict:
        """The dataset's rasterio profile."""
        return dict(self.dataset.profile)

    def pixel_size_m(self) -> tuple[float, float]:
        """Approximate ground size of one pixel in metres, ``(x, y)``.

        Projected CRSs use their linear unit; geographic CRSs use the length of
        a degree of longitude and latitude at the scene's centre latitude on the
        WGS84 mean radius.
        """
        bounds = self.dataset.bounds
        return pixel_size_m(self.crs, self.dataset.res, (bounds.top + bounds.bottom) / 2)

    def gsd_m(self) -> float:
        """Approximate ground sample distance in metres per pixel.

        The mean of the x and y sizes of :meth:`pixel_size_m`.
        """
        x, y = self.pixel_size_m()
        return 0.5 * (x + y)

    def pixel_area_m2(self) -> float:
        """Approximate ground area of one pixel in square metres.

        The x size times the y size of :meth:`pixel_size_m`.
        """
        x, y = self.pixel_size_m()
        return x * y

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """Read the selected bands and validity of a window.

        Args:
            window: Pixel window; may reach outside the scene (padded).

        Returns:
            ``(data, valid)``: ``(bands, h, w)`` float32 raw values (0 where
            invalid or outside) and ``(h, w)`` bool validity (see
            :meth:`read_valid`).
        """
        if self.grid is not None:
            return self._read_warped(window)
        ds = self.dataset
        col, row, w, h = (int(v) for v in window.flatten())
        c0, r0, c1, r1 = max(0, col), max(0, row), min(ds.width, col + w), min(ds.height, row + h)
        # the part inside, padded here (rasterio's boundless reads hung GDAL beside a writer)
        data = np.zeros((len(self.bands), h, w), np.float32)
        valid = np.zeros((h, w), bool)
        if c1 > c0 and r1 > r0:
            inner = Window(c0, r0, c1 - c0, r1 - r0)
            rows, cols = slice(r0 - row, r1 - row), slice(c0 - col, c1 - col)
            data[:, rows, cols] = ds.read(self.bands, window=inner, out_dtype="float32")
            valid[rows, cols] = self._validity(inner, data[:, rows, cols])
        data[:, ~valid] = 0  # also clears NaN values and padding
        return data, valid

    def read_valid(self, window: Window) -> np.ndarray:
        """Validity of a window inside the scene: ``(h, w)`` bool.

        A pixel is valid when GDAL's mask of every selected band says so
        (nodata value, alpha band or internal mask) and, for floating-point
        scenes, its values are finite.
        """
        if self.grid is not None:
            return self._read_warped(window)[1]
        return self._validity(window)

    def _read_warped(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`read` on the model-GSD grid: bands and alpha band in one warp.

        (``read_masks`` of a ``WarpedVRT`` warps again, and it takes no
        boundless reads: the part inside the grid is read, the rest padded.)
        """
        ds = self.dataset
        col, row, w, h = (int(v) for v in window.flatten())
        data = np.zeros((len(self.bands), h, w), np.float32)
        valid = np.zeros((h, w), bool)
        c0, r0 = max(0, col), max(0, row)
        c1, r1 = min(ds.width, col + w), min(ds.height, row + h)
        if c1 > c0 and r1 > r0:
            inner = ds.read([*self.bands, ds.count], window=Window(c0, r0, c1 - c0, r1 - r0),
                            out_dtype="float32")
            rows, cols = slice(r0 - row, r1 - row), slice(c0 - col, c1 - col)
            data[:, rows, cols] = inner[:-1]
            valid[rows, cols] = inner[-1] > 0
        valid &= np.all(np.isfinite(data), axis=0)
        data[:, ~valid] = 0
        return data, valid

    def _validity(self, window: Window, data: np.ndarray | None = None, ds=None) -> np.ndarray:
        ds = self.dataset if ds is None else ds
        valid = np.all(ds.read_masks(self.bands, window=window) > 0, axis=0)
        if np.issubdtype(np.dtype(ds.dtypes[self.bands[0] - 1]), np.floating):
            if data is None:
                data = ds.read(self.bands, window=window)
            valid &= np.all(np.isfinite(data), axis=0)
        return valid

    def close(self) -> None:
        """Close the dataset (and the warped view of it)."""
        if self.dataset is not self.native:
            self.dataset.close()
        self.native.close()

    def __enter__(self) -> Scene:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class BandScaler:
    """Per-band standardisation with statistics stored in the model file.

    Args:
        mean: ``(bands,)`` per-band means of raw values.
        std: ``(bands,)`` per-band standard deviations (zeros become 1).
    """

    def __init__(self, mean, std) -> None:
        self.mean = np.asarray(mean, np.float32).reshape(-1, 1, 1)
        std = np.asarray(std, np.float32).reshape(-1, 1, 1)
        self.std = np.where(std > 0, std, 1).astype(np.float32)

    def __call__(self, data: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Scale ``(bands, h, w)`` raw values; invalid pixels become 0 (the mean).

        Returns:
            ``(bands, h, w)`` float32.
        """
        out = (data - self.mean) / self.std
        out[:, ~valid] = 0
        return out.astype(np.float32, copy=False)


def band_statistics(data: np.ndarray, valid: np.ndarray) -> tuple[list[float], list[float]]:
    """Mean and standard deviation of each band over valid pixels.

    Args:
        data: ``(bands, h, w)`` raw values.
        valid: ``(h, w)`` bool.

    Returns:
        ``(mean, std)``, lists of floats, one per band.
    """
    sel = data[:, valid].astype(np.float64)
    return sel.mean(axis=1).tolist(), sel.std(axis=1).tolist()


def iter_tile_batches(path, bands, windows, scaler: BandScaler, batch_size: int,
                      grid: ModelGrid | None = None):
    """Read and scale tiles, skipping all-nodata ones, and group them in batches.

    Opens its own dataset handle (GDAL handles are not shared between threads),
    so it can run on a background thread; with ``grid`` it opens the same
    ``WarpedVRT`` as the run's :class:`Scene`.

    Args:
        path: Scene path.
        bands: 1-based bands, in model input order.
        windows: Tile windows in plan order (of ``grid.grid`` when given).
        scaler: Per-band scaling.
        batch_size: Tiles per batch.
        grid: The model-GSD grid the run reads the scene on (``Scene.grid``),
            or ``None`` for the scene's own.

    Yields:
        ``(windows, batch, valid, n_read)``: the batch's windows, a ``(b, bands, t, t)``
        float32 array (:func:`~geounet.io.padding.read_scaled`), its
        ``(b, t, t)`` bool validity (see :meth:`Scene.read_valid`), and how many plan
        windows have been read so far (skipped ones included). A final
        ``([], None, None, n)`` reports trailing skipped tiles.
    """
    with gdal_env(), Scene(path, bands, grid=grid) as scene:
        wins: list = []
        arrs: list = []
        masks: list = []
        n = 0
        for window in windows:
            x, valid = read_scaled(scene, window, scaler)
            n += 1
            if valid.any():
                wins.append(window)
                arrs.append(x)
                masks.append(valid)
            if len(wins) == batch_size:
                yield wins, np.stack(arrs), np.stack(masks), n
                wins, arrs, masks = [], [], []
        if wins:
            yield wins, np.stack(arrs), np.stack(masks), n
        else:
            yield [], None, None, n
