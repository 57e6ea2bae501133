"""Deprecated: moved to :mod:`geounet.pipeline.sieve` (removed in geounet 0.3)."""

from geounet._deprecated import moved_to

__getattr__ = moved_to(__name__, {
    "sieve_classes": "geounet.pipeline.sieve",
    "StripSieve": "geounet.pipeline.sieve",
    "MAX_HALO_PX": "geounet.pipeline.sieve",
})
