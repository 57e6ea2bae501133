"""Deprecated: split into geounet.io.vector, geounet.io.writers and geounet.io.rasters.

Removed in geounet 0.3; see CHANGELOG.md for where each name went.
"""

from geounet._deprecated import moved_to

__getattr__ = moved_to(__name__, {
    "VECTOR_DRIVERS": "geounet.io.vector",
    "VectorSink": "geounet.io.vector",
    "read_vector": "geounet.io.vector",
    "vector_format": "geounet.io.writers",
    "open_sink": "geounet.io.writers",
    "write_vector": "geounet.io.writers",
    "geotiff_profile": "geounet.io.rasters",
    "RowWriter": "geounet.io.rasters",
    "to_cog": "geounet.io.rasters",
})
