"""Step 2 of :func:`geounet.footprints.regularization.regularize`: tidy regularised rings.

``buildingregulariser`` leaves short steps, cut corners and spikes on the
outlines of vectorised pixel staircases, and its edges sit a little off the
raw outline. :func:`tidy_polygon` removes the short edges
(:func:`remove_short_edges`) and shifts each remaining edge, parallel to
itself, onto the raw outline (:func:`refit_ring`). All lengths are in the
units of the (metric) CRS the geometries are in.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import shapely

from geounet.geometry import polygonal

PARALLEL_DEG = 10.0
"""Edges within this many degrees of each other count as parallel in :func:`remove_short_edges`."""

MAX_OUTLINE_POINTS = 4000
"""About the most points the raw outline is sampled at (bounded memory for huge outlines)."""

POINTS_PER_CHUNK = 2_000_000
"""Point-edge pairs measured at once in :func:`refit_ring`."""


def tidy_polygon(geom: Any, raw: Any, min_len: float, step: float, max_d: float) -> Any | None:
    """Tidy one regularised (Multi)Polygon against its raw polygon, CRS units.

    Each ring loses its edges shorter than ``min_len``
    (:func:`remove_short_edges`), then is refitted onto the raw outline
    (:func:`refit_ring`) where that keeps it simple; parts that would become
    invalid keep their untidied rings.

    Args:
        geom: The library's geometry for one polygon (any geometry type).
        raw: The raw (Multi)Polygon it came from, same CRS.
        min_len: Edges shorter than this are removed.
        step: Sampling step of the raw outline (made coarser for outlines of
            more than :data:`MAX_OUTLINE_POINTS` points).
        max_d: Largest distance an edge is moved, and of the raw points it is
            fitted to.

    Returns:
        The tidied polygonal geometry, the untidied one where tidying made
        it invalid, or None when neither is a valid non-empty polygon.
    """
    if not geom.is_valid:
        geom = polygonal(shapely.make_valid(geom))
    elif geom.geom_type not in ("Polygon", "MultiPolygon"):
        geom = polygonal(geom)
    if geom.is_empty or not geom.is_valid:
        return None
    boundary = shapely.boundary(raw)
    # raw outline sampled every ``step``; coarser for huge outlines (bounded memory)
    step = max(step, boundary.length / MAX_OUTLINE_POINTS)
    points = shapely.get_coordinates(shapely.segmentize(boundary, step))
    parts = [_tidy_part(part, points, min_len, max_d) for part in shapely.get_parts(geom)]
    tidy = parts[0] if len(parts) == 1 else shapely.union_all(parts)
    if tidy.is_valid and not tidy.is_empty:
        return polygonal(tidy)
    return geom


def _tidy_part(part: Any, points: np.ndarray, min_len: float, max_d: float) -> Any:
    """One Polygon with every ring tidied, or ``part`` itself when that is invalid."""
    new = []
    for ring in [part.exterior, *part.interiors]:
        coords = remove_short_edges(np.asarray(ring.coords), min_len)
        fitted = refit_ring(coords, points, max_d)
        if fitted is not None:
            fitted = remove_short_edges(fitted, min_len)
            if len(fitted) >= 4 and shapely.LinearRing(fitted).is_simple:
                coords = fitted
        new.append(coords)
    candidate = shapely.Polygon(new[0], new[1:]) if len(new[0]) >= 4 else part
    return candidate if candidate.is_valid and not candidate.is_empty else part


def _line_crossing(p: np.ndarray, u: np.ndarray, q: np.ndarray,
                   v: np.ndarray) -> np.ndarray | None:
    """Crossing of the lines ``p + s*u`` and ``q + t*v``; None when (nearly) parallel."""
    den = u[0] * v[1] - u[1] * v[0]
    if abs(den) < 1e-9 * math.hypot(*u) * math.hypot(*v):
        return None
    d = q - p
    return p + (d[0] * v[1] - d[1] * v[0]) / den * u


def _drop_collinear(v: np.ndarray, eps: float) -> np.ndarray:
    """Open ring ``v`` without repeated vertices and vertices in the middle of a straight line."""
    while len(v) > 3:
        a = v - np.roll(v, 1, axis=0)
        b = np.roll(v, -1, axis=0) - v
        la, lb = np.hypot(a[:, 0], a[:, 1]), np.hypot(b[:, 0], b[:, 1])
        cross = np.abs(a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0])
        dot = a[:, 0] * b[:, 0] + a[:, 1] * b[:, 1]
        bad = (la < eps) | ((cross <= 1e-6 * la * lb) & (dot > 0))
        if not bad.any():
            break
        if bad.all():
            bad[0] = False
        v = v[~bad]
    return v


def remove_short_edges(coords: np.ndarray, min_len: float) -> np.ndarray:
    """Remove the edges shorter than ``min_len`` from a closed ring, shortest first.

    An edge between two (nearly, within 10 degrees) parallel edges going the
    same way is a step: the three become one line at the two edges'
    length-weighted offset. Between antiparallel edges it closes a spike or
    notch, which is cut off at its base. Between other edges it is a cut
    corner, replaced by the crossing of its neighbours (when that crossing
    lies within ``2 * min_len``). A removal that would make the ring
    self-intersect is skipped. Rings stay at 4 vertices or more.

    Args:
        coords: ``(n, 2)`` float coordinates of a ring (closed or open).
        min_len: Shortest edge kept, CRS units.

    Returns:
        The closed ring's ``(m, 2)`` float64 coordinates.
    """
    v = np.asarray(coords, np.float64)
    if len(v) > 1 and np.array_equal(v[0], v[-1]):
        v = v[:-1]
    eps = 1e-9 * max(1.0, float(np.abs(v).max())) if len(v) else 0.0
    v = _drop_collinear(v, eps)
    sin_par = math.sin(math.radians(PARALLEL_DEG))
    skip: set = set()
    for _ in range(4 * len(v)):
        n = len(v)
        if n <= 4:
            break
        e = np.roll(v, -1, axis=0) - v
        length = np.hypot(e[:, 0], e[:, 1])
        order = [int(i) for i in np.argsort(length, kind="stable")
                 if length[i] < min_len and (v[i, 0], v[i, 1]) not in skip]
        if not order:
            break
        i = order[0]
        new = _without_edge(v, e, length, i, min_len, sin_par)
        if new is not None and len(new) >= 3:
            new = _drop_collinear(new, eps)
            if len(new) >= 3 and shapely.LinearRing(new).is_simple:
                v = new
                continue
        skip.add((v[i, 0], v[i, 1]))
    return np.vstack([v, v[:1]])


def _without_edge(v: np.ndarray, e: np.ndarray, length: np.ndarray, i: int, min_len: float,
                  sin_par: float) -> np.ndarray | None:
    """Open ring ``v`` with its edge ``i`` (``v[i] -> v[i+1]``) removed, or None.

    ``e`` and ``length`` are the ring's edge vectors and lengths; see
    :func:`remove_short_edges` for the three cases.
    """
    n = len(v)
    ia, ib = (i - 1) % n, (i + 1) % n
    ua, ub = e[ia], e[ib]
    cross = ua[0] * ub[1] - ua[1] * ub[0]
    dot = ua[0] * ub[0] + ua[1] * ub[1]
    new = None
    if abs(cross) > sin_par * length[ia] * length[ib]:          # cut corner
        x = _line_crossing(v[ia], ua, v[ib], ub)
        if x is not None and math.hypot(*(x - (v[i] + v[ib]) / 2)) <= 2 * min_len:
            new = v.copy()
            new[i] = x
            new = np.delete(new, ib, axis=0)
    elif dot > 0:                                               # step
        u = ua / length[ia]
        nrm = np.array([-u[1], u[0]])
        off = (length[ia] * (nrm @ v[ia]) + length[ib] * (nrm @ v[ib])) / (
            length[ia] + length[ib])
        p = nrm * off
        i2, i3 = (i - 2) % n, (i + 2) % n
        x1 = _line_crossing(v[i2], e[i2], p, u)
        x2 = _line_crossing(p, u, v[i3], e[i3])
        if x1 is not None and x2 is not None:
            new = v.copy()
            new[ia], new[i3] = x1, x2
            new = np.delete(new, [i, ib], axis=0)
    else:                                                       # spike or notch
        new = np.delete(v, [i, ib], axis=0)
    return new


def refit_ring(coords: np.ndarray, points: np.ndarray, max_d: float) -> np.ndarray | None:
    """Shift each edge of a closed ring parallel to itself onto the raw outline.

    Each raw outline point goes to its nearest edge (if within ``max_d``); an
    edge with 2+ points moves to their median offset along its normal (by at
    most ``max_d``), and the vertices become the crossings of consecutive
    edges' lines.

    Args:
        coords: ``(n + 1, 2)`` coordinates of the closed ring.
        points: ``(p, 2)`` points sampled along the raw outline.
        max_d: Largest point-edge distance and edge shift, CRS units.

    Returns:
        The closed ring's ``(n + 1, 2)`` coordinates, or None when two
        consecutive edges are parallel (or the ring is degenerate).
    """
    v = np.asarray(coords, np.float64)[:-1]
    n = len(v)
    if n < 3 or len(points) == 0:
        return None
    e = np.roll(v, -1, axis=0) - v
    length = np.hypot(e[:, 0], e[:, 1])
    if (length <= 0).any():
        return None
    u = e / length[:, None]
    nrm = np.column_stack([-u[:, 1], u[:, 0]])
    off = np.einsum("ij,ij->i", nrm, v)
    nearest, near_d = _nearest_edges(points, v, u, length)
    new_off = off.copy()
    for i in range(n):
        sel = (nearest == i) & (near_d <= max_d)
        if sel.sum() >= 2:
            o = float(np.median(points[sel] @ nrm[i]))
            if abs(o - off[i]) <= max_d:
                new_off[i] = o
    out = np.empty_like(v)
    for i in range(n):
        j = (i - 1) % n
        det = nrm[j, 0] * nrm[i, 1] - nrm[j, 1] * nrm[i, 0]
        if abs(det) < 1e-6:
            return None
        out[i] = [(new_off[j] * nrm[i, 1] - new_off[i] * nrm[j, 1]) / det,
                  (nrm[j, 0] * new_off[i] - nrm[i, 0] * new_off[j]) / det]
    return np.vstack([out, out[:1]])


def _nearest_edges(points: np.ndarray, v: np.ndarray, u: np.ndarray,
                   length: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per point, the nearest edge segment (``v[i]`` along ``u[i]`` for ``length[i]``).

    Returns:
        ``(nearest, distance)``: ``(p,)`` int64 edge indices and float
        distances, computed in chunks of points (bounded memory).
    """
    nearest = np.empty(len(points), np.int64)
    near_d = np.empty(len(points))
    chunk = max(1, POINTS_PER_CHUNK // len(v))
    for s in range(0, len(points), chunk):
        d = points[s:s + chunk, None, :] - v[None, :, :]
        t = np.clip(np.einsum("pij,ij->pi", d, u), 0.0, length[None, :])
        gap = d - t[..., None] * u[None, :, :]
        dist = np.hypot(gap[..., 0], gap[..., 1])
        k = dist.argmin(axis=1)
        nearest[s:s + chunk] = k
        near_d[s:s + chunk] = dist[np.arange(len(k)), k]
    return nearest, near_d
