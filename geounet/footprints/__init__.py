"""Post-processing of building footprints: split touching buildings, fill holes, regularise.

Every function takes a GeoDataFrame of footprints (geounet's columns
``class_id``, ``class_name``, ``area_m2``, ``score``, ``geometry``; any other
columns are carried along) and returns a new one with the same columns, the
same CRS and a fresh ``0..n-1`` index. Rows whose geometry changed (or whose
``area_m2`` is NaN or missing) get a new ``area_m2``; every other attribute
comes from the source polygon (pieces of a split polygon copy their parent's).
Unchanged rows keep their geometry object as is. Outputs are valid
(``shapely.is_valid``) Polygons or MultiPolygons; empty and missing geometries
are dropped.

Lengths and areas are in metres and square metres on the ground, as
:mod:`geounet.geometry` measures them: in the CRS itself when it is projected
(scaled by its linear unit, so feet work) and in the local UTM zone
(``GeoDataFrame.estimate_utm_crs``) when it is geographic. Geometries are
always returned in the input CRS.

Modules: :mod:`~geounet.footprints.split` (:func:`split_touching`, over
:mod:`~geounet.footprints.watershed`), :mod:`~geounet.footprints.holes`
(:func:`fill_holes`), :mod:`~geounet.footprints.regularization`
(:func:`regularize`, over :mod:`~geounet.footprints.tidy`) and
:mod:`~geounet.footprints.checks` (argument checks and frame plumbing).

Heavy libraries (scipy, scikit-image, buildingregulariser) are imported inside
the functions, so importing this package is cheap.
"""

from __future__ import annotations

from geounet.footprints.holes import fill_holes
from geounet.footprints.regularization import DEFAULT_TOLERANCE_M, regularize
from geounet.footprints.split import DEFAULT_H_M, DEFAULT_MIN_SEPARATION_M, split_touching

__all__ = [
    "DEFAULT_H_M",
    "DEFAULT_MIN_SEPARATION_M",
    "DEFAULT_TOLERANCE_M",
    "fill_holes",
    "regularize",
    "split_touching",
]
