"""Minimum mapping unit: sieve a class raster that arrives strip by strip.

Land-cover maps want no region smaller than a minimum mapping unit: each
connected region of one class smaller than ``size_px`` pixels takes the class
of its largest neighbouring region. That is GDAL's sieve filter
(``GDALSieveFilter``, exposed as ``rasterio.features.sieve`` and QGIS's
*Sieve*), which geounet calls; geounet's part is feeding it strips.

A region smaller than ``size_px`` pixels spans fewer than ``size_px`` rows, so a row is
final once ``halo_px >= size_px`` rows below it have arrived: the sieve runs on the
buffered rows plus ``halo_px`` rows of context above, and emits the rows that are final.
Every region smaller than the threshold is then seen whole, and a region that reaches
the window's edge from a final row has more than ``halo_px`` pixels, so *which* pixels
are sieved is exactly as in one sieve over the whole raster (the tests check it). The
class a sieved region takes, that of its largest neighbour, can differ where two
neighbours are both cut by the window and compare differently there; ``halo_px = 4 *
size_px`` makes that rare (none in the tests' generated rasters, against 0.2 % of pixels
with ``halo_px = size_px``; on the Raleigh sample with ``--sieve 5000``, 28 of 216 627
pixels with the model's 128 px tiles and 43 with 64 px tiles). Memory holds ``2 *
halo_px`` rows plus one strip; ``halo_px`` is capped at :data:`MAX_HALO_PX` (a warning
is logged when the cap is below ``size_px``, which makes the sieve approximate for long,
thin regions).
"""

from __future__ import annotations

import logging

import numpy as np
from rasterio import features

from geounet.pipeline.strips import Strip, StripStage

log = logging.getLogger(__name__)

MAX_HALO_PX = 1024
"""Most rows of context kept above and below the rows being sieved."""


def sieve_classes(classes: np.ndarray, size_px: int, valid: np.ndarray | None = None,
                  connectivity: int = 4) -> np.ndarray:
    """Sieve a whole class raster (``rasterio.features.sieve``).

    Args:
        classes: ``(h, w)`` uint8 class ids.
        size_px: Regions smaller than this many pixels take the class of their
            largest neighbouring region.
        valid: ``(h, w)`` bool, False for nodata pixels, which neither are
            sieved nor count as neighbours (default: all valid).
        connectivity: 4 or 8.

    Returns:
        ``(h, w)`` uint8 sieved class ids (nodata pixels unchanged).
    """
    size_px = min(int(size_px), classes.size - 1)  # GDAL needs it below the image size
    if size_px <= 1:
        return classes.copy()
    out = features.sieve(np.ascontiguousarray(classes), size_px,
                mask=None if valid is None else np.ascontiguousarray(valid),
                connectivity=connectivity)
    if valid is not None:
        out = np.where(valid, out, classes)
    return out.astype(np.uint8, copy=False)


class StripSieve:
    """A strip stage: sieve the class strips and hand on the rows that are final.

    Args:
        size_px: Minimum region size in pixels (regions smaller than this are
            merged into their largest neighbour).
        connectivity: 4 or 8.
        downstream: The next strip stage; it gets contiguous classified strips
            (sieved uint8 ``classes``, their ``probs`` and ``valid``), top to
            bottom.
        height: Rows of the whole raster, if known (no warning about the
            context cap when the raster is shorter than it).

    Raises:
        ValueError: (from :meth:`add`) if strips are not contiguous.
    """

    def __init__(self, size_px: int, connectivity: int, downstream: StripStage,
                 height: int | None = None) -> None:
        self.size_px = int(size_px)
        self.halo = min(4 * self.size_px, MAX_HALO_PX)
        if self.size_px > MAX_HALO_PX and (height is None or height > MAX_HALO_PX):
            log.warning(
                "sieve of %d px keeps %d rows of context: regions longer than that are sieved "
                "as if they were cut at its edge", self.size_px, MAX_HALO_PX)
        self.connectivity = connectivity
        self.downstream = downstream
        self._row0 = 0     # scene row of the buffer's first row
        self._done = 0     # next row to emit
        self._cls: np.ndarray | None = None
        self._probs: np.ndarray | None = None
        self._valid: np.ndarray | None = None

    def add(self, strip: Strip) -> None:
        """Add a classified strip and emit the rows now final.

        Args:
            strip: The next strip, with ``classes``.

        Raises:
            ValueError: if it does not start where the previous one ended.
        """
        end = self._row0 + (0 if self._cls is None else self._cls.shape[0])
        if strip.row_off != end:
            raise ValueError(f"strip at row {strip.row_off} does not follow row {end}")
        assert strip.classes is not None
        if self._cls is None or self._probs is None or self._valid is None:
            self._cls = strip.classes.copy()
            self._probs, self._valid = strip.probs.copy(), strip.valid.copy()
        else:
            self._cls = np.concatenate([self._cls, strip.classes])
            self._probs = np.concatenate([self._probs, strip.probs], axis=1)
            self._valid = np.concatenate([self._valid, strip.valid])
        final = strip.row_off + strip.n_rows - self.halo
        if final > self._done:
            self._emit(final)

    def finish(self) -> None:
        """Emit every remaining row, then finish the next stage."""
        if self._cls is not None:
            self._emit(self._row0 + self._cls.shape[0])
        self.downstream.finish()

    def abort(self) -> None:
        """Drop the buffered rows and abort the next stage."""
        self._cls = self._probs = self._valid = None
        self.downstream.abort()

    def _emit(self, upto: int) -> None:
        assert self._cls is not None and self._probs is not None and self._valid is not None
        sieved = sieve_classes(self._cls, self.size_px, self._valid, self.connectivity)
        a, b = self._done - self._row0, upto - self._row0
        self.downstream.add(Strip(self._done, self._probs[:, a:b], self._valid[a:b],
                                  sieved[a:b]))
        self._done = upto
        # keep halo rows of context above the next rows to emit
        drop = max(0, upto - self.halo - self._row0)
        if drop:
            self._cls, self._valid = self._cls[drop:], self._valid[drop:]
            self._probs = self._probs[:, drop:]
            self._row0 += drop
