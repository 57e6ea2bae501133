"""Stage 7 - write, rasters: GeoTIFFs written row strip by row strip, overviews, COGs.

Class rasters are uint8 with nodata 255 (:data:`geounet.constants.CLASS_NODATA`) and a
colour table; probability rasters are uint8 0-255 with an internal mask, or float32
with NaN nodata. Files are tiled (256 px blocks), DEFLATE-compressed, with internal
overviews, or copied to Cloud Optimized GeoTIFFs by GDAL's COG driver. Writers write
to the path they are given (a temporary path from :mod:`geounet.io.atomic`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.enums import ColorInterp, Resampling
from rasterio.windows import Window


def geotiff_profile(
    width: int, height: int, count: int, dtype: str, crs: Any, transform: Any,
    nodata: float | None = None,
) -> dict[str, Any]:
    """Profile of a tiled, DEFLATE-compressed GeoTIFF.

    Args:
        width: Width in pixels.
        height: Height in pixels.
        count: Number of bands.
        dtype: Numpy/GDAL dtype name (``"uint8"``, ``"float32"``).
        crs: The raster's CRS.
        transform: Its affine transform (pixel -> CRS units).
        nodata: Nodata value, or ``None`` for none (use a mask instead).

    Returns:
        A rasterio profile for ``rasterio.open(path, "w", **profile)``.
    """
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": count,
        "dtype": dtype,
        "crs": crs,
        "transform": transform,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "BIGTIFF": "IF_SAFER",
    }
    if nodata is not None:
        profile["nodata"] = nodata
    if count > 1:
        profile["interleave"] = "pixel"
    return profile


class RowWriter:
    """Writes row strips of a raster into an open GeoTIFF.

    Args:
        path: File to create.
        profile: rasterio profile (see :func:`geotiff_profile`).
        use_mask: Write validity as an internal GDAL mask band (for uint8
            probabilities, whose 0-255 range leaves no nodata value).
        band_descriptions: Optional description per band.
        colormap: Optional ``{value: "#rrggbb"}`` colour table of a one-band
            uint8 raster (GIS programs show a class raster in these colours).
        tags: Optional dataset metadata items (``{"KEY": "text"}``).
    """

    def __init__(self, path, profile: dict, use_mask: bool = False, band_descriptions=None,
                 colormap: dict[int, str] | None = None, tags: dict[str, str] | None = None):
        self.use_mask = use_mask
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
            self.ds = rasterio.open(path, "w", **profile)
        if band_descriptions:
            for i, d in enumerate(band_descriptions, start=1):
                self.ds.set_band_description(i, d)
        if tags:
            self.ds.update_tags(**tags)
        if colormap:
            self.ds.write_colormap(1, {int(k): _rgba(v) for k, v in colormap.items()})
        elif profile["count"] == 1:
            self.ds.colorinterp = [ColorInterp.gray]

    def write(self, row_off: int, data: np.ndarray, valid: np.ndarray | None = None) -> None:
        """Write ``(count, n_rows, width)`` values starting at ``row_off``."""
        window = Window(0, row_off, data.shape[2], data.shape[1])
        self.ds.write(data, window=window)
        if self.use_mask and valid is not None:
            with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
                self.ds.write_mask(np.where(valid, 255, 0).astype(np.uint8), window=window)

    def close(self, overviews: bool = True, resampling: str = "nearest") -> None:
        """Build internal overviews (factors 2, 4, 8... down to ~256 px) and close.

        Args:
            overviews: Build overviews (GDAL, block by block).
            resampling: ``nearest`` for class rasters, ``average`` for probabilities.
        """
        if self.ds.closed:
            return
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
            if overviews:
                factors = []
                f = 2
                while max(self.ds.width, self.ds.height) / f >= 128:
                    factors.append(f)
                    f *= 2
                if factors:
                    self.ds.build_overviews(factors, Resampling[resampling])
                    self.ds.update_tags(ns="rio_overview", resampling=resampling)
            self.ds.close()

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _rgba(color: str) -> tuple[int, int, int, int]:
    """``"#rrggbb"`` -> ``(r, g, b, 255)``."""
    c = color.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16), 255


def to_cog(src, dst, resampling: str = "nearest") -> None:
    """Copy a GeoTIFF to a Cloud Optimized GeoTIFF with GDAL's COG driver.

    Args:
        src: Source GeoTIFF.
        dst: Destination path (overwritten).
        resampling: Overview resampling (``nearest`` for classes, ``average``
            for probabilities).
    """
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        rasterio.shutil.copy(str(src), str(dst), driver="COG", COMPRESS="DEFLATE", BLOCKSIZE=512,
             OVERVIEW_RESAMPLING=resampling.upper(), BIGTIFF="IF_SAFER")
