"""Deprecated: moved to :mod:`geounet.pipeline.stitch` (removed in geounet 0.3)."""

from geounet._deprecated import moved_to

__getattr__ = moved_to(__name__, {
    "axis_weights": "geounet.pipeline.stitch",
    "tile_weights": "geounet.pipeline.stitch",
    "StripStitcher": "geounet.pipeline.stitch",
    "stitch_to_array": "geounet.pipeline.stitch",
})
