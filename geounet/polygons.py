"""Deprecated: moved to geounet.pipeline.vectorize, .postprocess and .arrays.

Removed in geounet 0.3; see CHANGELOG.md for where each name went.
"""

from geounet._deprecated import moved_to

__getattr__ = moved_to(__name__, {
    "CLASS_NODATA": "geounet.constants",
    "COLUMNS": "geounet.io.vector",
    "empty_frame": "geounet.io.vector",
    "product_mask": "geounet.pipeline.shapes",
    "polygons_from_classes": "geounet.pipeline.shapes",
    "polygon_scores": "geounet.pipeline.shapes",
    "StreamingVectorizer": "geounet.pipeline.vectorize",
    "finish_polygons": "geounet.pipeline.postprocess",
    "vectorize": "geounet.pipeline.arrays",
})
