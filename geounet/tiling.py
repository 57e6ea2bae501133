"""Deprecated: moved to :mod:`geounet.pipeline.tiling` (removed in geounet 0.3)."""

from geounet._deprecated import moved_to

__getattr__ = moved_to(__name__, {
    "axis_offsets": "geounet.pipeline.tiling",
    "TilePlan": "geounet.pipeline.tiling",
    "plan_tiles": "geounet.pipeline.tiling",
    "padded_size": "geounet.pipeline.tiling",
})
