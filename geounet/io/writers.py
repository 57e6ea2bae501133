"""The vector writer registry: output extension -> writer, geounet's own and plugins'.

geounet's formats (:mod:`geounet.io.vector`) and a plugin's
(``geounet_vector_writers`` hook) come from the same hook, so an extension
resolves the same way for both.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

from geounet.errors import UnsupportedFormatError
from geounet.hooks import vector_writers
from geounet.io.vector import VECTOR_DRIVERS, check_dependencies


def vector_format(path: str | os.PathLike[str]) -> str:
    """The format name for an output path's extension.

    Built-in formats are :data:`geounet.io.vector.VECTOR_DRIVERS` values
    (``"GeoJSON"``, ``"GPKG"``...); a plugin's is ``"plugin:.ext"``.

    Args:
        path: The output path.

    Returns:
        The format name.

    Raises:
        UnsupportedFormatError: for an extension nobody writes.
        MissingDependencyError: for a format whose library is not installed
            (GeoParquet without pyarrow).
    """
    ext = Path(path).suffix.lower()
    if ext in VECTOR_DRIVERS:
        check_dependencies(VECTOR_DRIVERS[ext], path)
        return VECTOR_DRIVERS[ext]
    writers = vector_writers()
    if ext in writers:
        return f"plugin:{ext}"
    raise UnsupportedFormatError(
        f"output {str(path)!r} has extension {ext or '(none)'!r}: expected one of "
        f"{', '.join(writers)}; rename the output"
    )


def open_sink(path: str | os.PathLike[str], crs: Any, geometry_type: str = "Polygon") -> Any:
    """A streaming writer for ``path``, chosen by its extension.

    Args:
        path: File to write (a temporary path; the caller renames it).
        crs: CRS of the batches that will be written.
        geometry_type: ``"Polygon"``, or ``"Unknown"`` when MultiPolygons may
            occur (passed to factories that take it).

    Returns:
        An object with ``write(gdf)``, ``close()`` and ``abort()``.

    Raises:
        UnsupportedFormatError: for an extension nobody writes.
    """
    vector_format(path)
    factory = vector_writers()[Path(path).suffix.lower()]
    try:
        takes_type = "geometry_type" in inspect.signature(factory).parameters
    except (TypeError, ValueError):  # builtins without a signature
        takes_type = False
    if takes_type:
        return factory(str(path), crs, geometry_type=geometry_type)
    return factory(str(path), crs)


def write_vector(gdf: Any, path: str | os.PathLike[str]) -> None:
    """Write polygons in the format of ``path``'s extension (one batch through its writer).

    GeoJSON is reprojected to EPSG:4326 and written with GDAL's ``RFC7946=YES``
    (lon/lat order, right-hand rule, 7 decimals). Other formats keep the
    GeoDataFrame's CRS.

    Args:
        gdf: Polygons with a CRS and the columns of
            :func:`geounet.pipeline.vectorize.vectorize`.
        path: File to write (overwritten).

    Raises:
        UnsupportedFormatError: for an unknown extension.
    """
    types = set(gdf.geom_type.dropna())
    sink = open_sink(path, gdf.crs, "Polygon" if types <= {"Polygon"} else "Unknown")
    try:
        sink.write(gdf)
    except BaseException:
        sink.abort()
        raise
    sink.close()
