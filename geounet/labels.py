"""Label polygons: reading, class ids, and burning them into a scene's grid.

Training (:mod:`geounet.training`) and evaluation (:mod:`geounet.evaluation`)
both read labels here. How the polygons become classes is stated once, in a
:class:`LabelSpec`: the attribute holding each polygon's class (or none: one
foreground class), a map from label values to class names, and what the
pixels outside every polygon are (``background``, class 0, for dense labels
such as building footprints; or left out, :data:`~geounet.constants.CLASS_NODATA`,
for sparse labels such as a few land-cover polygons).

Labels are burned with ``rasterio.features.rasterize`` (pixel-centre rule).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geounet.constants import CLASS_NODATA
from geounet.errors import InputNotFoundError, InvalidOptionError, LabelError, MissingCRSError
from geounet.io.vector import read_vector

log = logging.getLogger(__name__)

UNLABELLED_MODES = ("background", "ignore")
"""Values of :attr:`LabelSpec.unlabelled`."""


@dataclass(frozen=True)
class LabelSpec:
    """How label polygons become class ids.

    Attributes:
        label_column: Attribute holding each polygon's class; ``None`` makes
            every polygon ``class_name`` (a binary model).
        class_name: Name of the one foreground class when ``label_column``
            is ``None``.
        class_map: Label value (as text) -> class name, in class-id order
            (several values may share a name); ``None`` takes the sorted
            unique values of ``label_column`` as the names. Polygons whose
            value is not in the map are not used.
        unlabelled: ``"background"``: pixels outside every polygon are class
            0, ``background`` (dense labels). ``"ignore"``: they are
            :data:`~geounet.constants.CLASS_NODATA` and there is no
            background class (sparse labels).

    Raises:
        InvalidOptionError: if ``unlabelled`` is not one of
            :data:`UNLABELLED_MODES`.
    """

    label_column: str | None = None
    class_name: str = "building"
    class_map: dict[str, str] | None = None
    unlabelled: str = "background"

    def __post_init__(self) -> None:
        if self.unlabelled not in UNLABELLED_MODES:
            raise InvalidOptionError(
                f"unlabelled {self.unlabelled!r} must be 'background' (dense labels) or "
                "'ignore' (sparse labels)"
            )

    @property
    def background_class(self) -> int | None:
        """Class id of ``background`` (0), or ``None`` for sparse labels."""
        return 0 if self.unlabelled == "background" else None

    @property
    def fill(self) -> int:
        """Burned value of pixels outside every polygon: 0 or ``CLASS_NODATA`` (uint8)."""
        return 0 if self.unlabelled == "background" else CLASS_NODATA

    def load(self, labels_path: str | os.PathLike, crs: Any) -> tuple[Any, list[str]]:
        """Read label polygons and give each one a class id (see :func:`load_labels`).

        Args:
            labels_path: Vector file (GeoJSON, GeoPackage, Shapefile...), any CRS.
            crs: Scene CRS (anything ``GeoDataFrame.to_crs`` takes); labels are
                reprojected to it.

        Returns:
            ``(gdf, classes)`` as :func:`load_labels` returns them.

        Raises:
            InputNotFoundError: if the file does not exist.
            MissingCRSError: if it has no CRS.
            LabelError: if it is unreadable, empty, lacks ``label_column``, or
                no value matches ``class_map``.
        """
        gdf = read_label_polygons(labels_path, crs)
        first = 1 if self.background_class == 0 else 0
        if self.label_column is None:
            names = [self.class_name]
            gdf = gdf.assign(class_id=first)
        else:
            gdf, names = _column_class_ids(gdf, self, first, labels_path)
        classes = (["background"] if first else []) + names
        return gdf, classes


def natural_key(value: str) -> tuple[int, float, str]:
    """Sort key of label values: numeric codes by value (1, 2, 11), other text after them.

    Args:
        value: A label value as text.

    Returns:
        ``(0, number, "")`` for numeric text, else ``(1, 0.0, value)``.
    """
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


def label_text(value: Any) -> str:
    """Label value as text: 3.0 -> ``'3'``, so integer codes read as floats still match.

    Args:
        value: A label attribute value (int, float, str...).

    Returns:
        Its text.
    """
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def read_label_polygons(labels_path: str | os.PathLike, crs: Any) -> Any:
    """Read the non-empty polygons of a label file, numbered, in the scene's CRS.

    Args:
        labels_path: Vector file, any CRS.
        crs: Target CRS (``None``: the file's).

    Returns:
        GeoDataFrame of the non-empty geometries in ``crs`` with an int column
        ``row``: the 0-based position of each feature in the file.

    Raises:
        InputNotFoundError: if the file does not exist.
        MissingCRSError: if it has no CRS.
        LabelError: if it is unreadable or holds no geometry.
    """
    if not Path(labels_path).exists():
        raise InputNotFoundError(f"labels {str(labels_path)!r} do not exist; check the path")
    try:
        gdf = read_vector(labels_path)
    except Exception as exc:
        raise LabelError(f"cannot read labels {str(labels_path)!r}: {exc}") from exc
    if gdf.crs is None:
        raise MissingCRSError(
            f"labels {str(labels_path)!r} have no CRS; write them with one (e.g. in QGIS, "
            "Set Layer CRS) or give a GeoPackage"
        )
    gdf = gdf.reset_index(drop=True)
    gdf["row"] = np.arange(len(gdf))
    gdf = gdf[~gdf.geometry.is_empty & gdf.geometry.notna()]
    if crs is not None:
        gdf = gdf.to_crs(crs)
    if gdf.empty:
        raise LabelError(f"labels {str(labels_path)!r} hold no geometries")
    return gdf


def _column_class_ids(gdf: Any, spec: LabelSpec, first: int,
                      labels_path: str | os.PathLike) -> tuple[Any, list[str]]:
    """Class ids from ``spec.label_column`` through ``spec.class_map``; drops unmapped rows."""
    column = spec.label_column
    if column not in gdf.columns:
        raise LabelError(
            f"label column {column!r} is not in {str(labels_path)!r}: columns are "
            f"{', '.join(c for c in gdf.columns if c not in ('geometry', 'row'))}"
        )
    values = gdf[column].map(lambda v: None if v is None or v != v else label_text(v))
    class_map = spec.class_map
    if class_map is None:
        class_map = {v: v for v in sorted(set(values.dropna()), key=natural_key)}
    names = list(dict.fromkeys(class_map.values()))
    ids = {v: names.index(n) + first for v, n in class_map.items()}
    gdf = gdf.assign(class_id=values.map(ids))
    unknown = sorted(set(values.dropna()) - set(class_map))
    if unknown:
        log.warning("labels with %s values %s are not in the class map; not used",
                    column, unknown)
    gdf = gdf[gdf["class_id"].notna()]
    if gdf.empty:
        raise LabelError(
            f"no polygon of {str(labels_path)!r} has a {column!r} value in the class "
            f"map {class_map}; the values are {sorted(set(values.dropna()))}"
        )
    return gdf.assign(class_id=gdf["class_id"].astype(int)), names


def load_labels(
    labels_path: str | os.PathLike,
    crs: Any,
    label_column: str | None = None,
    class_name: str = "building",
    class_map: dict[str, str] | None = None,
    unlabelled: str = "background",
) -> tuple[Any, list[str]]:
    """Read label polygons and give each one a class id.

    Args:
        labels_path: Vector file (GeoJSON, GeoPackage, Shapefile...), any CRS.
        crs: Scene CRS; labels are reprojected to it.
        label_column: Attribute with each polygon's class; ``None`` makes every
            polygon ``class_name``.
        class_name: Foreground name when ``label_column`` is ``None``.
        class_map: Label value (as text) -> class name, in class-id order;
            ``None``: the sorted unique values are the names.
        unlabelled: ``"background"`` puts a ``background`` class at id 0;
            ``"ignore"`` has none (sparse labels).

    Returns:
        ``(gdf, classes)``: the usable polygons in ``crs`` with an int column
        ``class_id`` and ``row`` (0-based position of the feature in the
        file), and the class names by id.

    Raises:
        InputNotFoundError: if the file does not exist.
        MissingCRSError: if it has no CRS.
        LabelError: if it is unreadable, empty, lacks ``label_column``, or no
            value matches ``class_map``.
        InvalidOptionError: if ``unlabelled`` is not ``background`` or ``ignore``.
    """
    spec = LabelSpec(label_column, class_name, class_map, unlabelled)
    return spec.load(labels_path, crs)


def burn_labels(gdf: Any, width: int, height: int, transform: Any, fill: int) -> np.ndarray:
    """Rasterise labelled polygons (``class_id`` column) in a scene's grid.

    Pixel-centre rule (``rasterio.features.rasterize``); where polygons overlap
    the later one wins.

    Args:
        gdf: Polygons in the scene's CRS with an int ``class_id`` column.
        width: Scene width in pixels.
        height: Scene height in pixels.
        transform: Scene affine transform.
        fill: Value of pixels outside every polygon (0 or
            :data:`~geounet.constants.CLASS_NODATA`).

    Returns:
        ``(height, width)`` uint8 class ids.
    """
    from rasterio.features import rasterize

    if gdf.empty:
        return np.full((height, width), fill, np.uint8)
    shapes = zip(gdf.geometry, gdf["class_id"].astype(int), strict=True)
    return rasterize(shapes, out_shape=(height, width), transform=transform, fill=fill,
                     dtype="uint8")


def require_overlap(labels: np.ndarray, fill: int, labels_path: str | os.PathLike) -> None:
    """Check that burned labels touch the scene.

    Args:
        labels: ``(h, w)`` uint8 burned class ids.
        fill: The value of unlabelled pixels in ``labels``.
        labels_path: The label file (named in the message).

    Raises:
        LabelError: when no pixel of ``labels`` differs from ``fill``.
    """
    if not (labels != fill).any():
        raise LabelError(
            f"labels {str(labels_path)!r} do not overlap the scene (after reprojection to the "
            "scene's CRS); check that they belong to this scene"
        )


def rasterize_labels(
    labels_path: str | os.PathLike,
    width: int,
    height: int,
    transform: Any,
    crs: Any,
    label_column: str | None = None,
    class_name: str = "building",
    class_map: dict[str, str] | None = None,
    unlabelled: str = "background",
) -> tuple[np.ndarray, list[str]]:
    """Burn label polygons into the scene's grid.

    Args:
        labels_path: Vector file (GeoJSON, GeoPackage...), any CRS.
        width: Scene width in pixels.
        height: Scene height in pixels.
        transform: Scene affine transform.
        crs: Scene CRS; labels are reprojected to it.
        label_column: As in :func:`load_labels`.
        class_name: As in :func:`load_labels`.
        class_map: As in :func:`load_labels`.
        unlabelled: As in :func:`load_labels`.

    Returns:
        ``(labels, classes)``: ``(height, width)`` uint8 class ids (unlabelled
        pixels 0 = background, or :data:`~geounet.constants.CLASS_NODATA`) and
        class names by id.

    Raises:
        InputNotFoundError: if the file does not exist.
        MissingCRSError: if it has no CRS.
        LabelError: if it is unreadable, empty, lacks ``label_column`` or
            does not overlap the scene.
    """
    spec = LabelSpec(label_column, class_name, class_map, unlabelled)
    gdf, classes = spec.load(labels_path, crs)
    labels = burn_labels(gdf, width, height, transform, spec.fill)
    require_overlap(labels, spec.fill, labels_path)
    return labels, classes


def hold_out_polygons(class_ids: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Choose whole polygons for validation, a fraction of each class.

    Per class with ``n`` polygons, ``round(fraction * n)`` of them, at least 1
    when ``n >= 2`` and at most ``n - 1`` (a class with one polygon keeps it
    for training), drawn with ``numpy.random.default_rng(seed)``.

    Args:
        class_ids: ``(n,)`` int class id per polygon.
        fraction: ``0 < fraction < 1``.
        seed: Random seed.

    Returns:
        ``(n,)`` bool, True for held-out polygons.
    """
    rng = np.random.default_rng(seed)
    out = np.zeros(len(class_ids), bool)
    for c in np.unique(class_ids):
        idx = np.flatnonzero(class_ids == c)
        if len(idx) < 2:
            continue
        k = min(len(idx) - 1, max(1, round(fraction * len(idx))))
        out[rng.choice(idx, size=k, replace=False)] = True
    return out
