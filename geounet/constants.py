"""Values every stage shares, stated once.

Units are part of the names, as in :mod:`geounet.config`: ``_PX`` is pixels of
the scene grid.
"""

from __future__ import annotations

CLASS_NODATA = 255
"""Nodata value of class rasters, and the "no label" value of burnt training
labels (class ids are 0..254)."""

RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".jp2", ".img")
"""File extensions treated as rasters (scene folders, evaluation inputs)."""

DEFAULT_TILE_SIZE_PX = 256
"""Tile size a model recommends when its file does not say, and the training tile size."""

DEFAULT_OVERLAP_PX = 32
"""Overlap a model recommends when its file does not say, and the training default."""

DEFAULT_THRESHOLD = 0.5
"""Probability threshold of a binary model when its file does not say."""
