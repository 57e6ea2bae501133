"""Stage 7 - write, vectors: geounet's own vector formats, streamed batch by batch.

Vector formats (chosen by the output's extension, see :mod:`geounet.io.writers`):

========== ============== ==============================================
extension  format         CRS written
========== ============== ==============================================
.geojson   GeoJSON        EPSG:4326 lon/lat, per RFC 7946
.json      GeoJSON        EPSG:4326 lon/lat, per RFC 7946
.gpkg      GeoPackage     the scene's CRS
.fgb       FlatGeobuf     the scene's CRS
.parquet   GeoParquet     the scene's CRS
========== ============== ==============================================

GeoJSON is text, so its numbers are rounded (:data:`GEOJSON_DECIMALS`); the
other formats store float64 values in full.

These writers are registered through the ``geounet_vector_writers`` hook, the
same way as a plugin's (:func:`geounet_vector_writers` below). Writers write to
the path they are given (a temporary path from :mod:`geounet.io.atomic`); the
caller renames it on success.
"""

from __future__ import annotations

import json
import logging
import os
from functools import partial
from typing import Any

import numpy as np
from pyproj import CRS

from geounet.errors import MissingDependencyError, UnsupportedFormatError
from geounet.hookspecs import hookimpl
from geounet.models.metadata import installed

log = logging.getLogger(__name__)

VECTOR_DRIVERS = {
    ".geojson": "GeoJSON",
    ".json": "GeoJSON",
    ".gpkg": "GPKG",
    ".fgb": "FlatGeobuf",
    ".parquet": "GeoParquet",
}


COLUMNS = ["class_id", "class_name", "area_m2", "score", "geometry"]
"""Columns of geounet's footprints, in order."""

GEOJSON_DECIMALS = {"area_m2": 2, "score": 4}
"""Decimals of the attribute columns in GeoJSON output (0.01 m², 1e-4 in probability);
coordinates get 7 decimals in EPSG:4326 (about 1 cm, GDAL's RFC 7946 default). The
binary formats keep full float64 values."""


def empty_frame(crs: Any) -> Any:
    """An empty GeoDataFrame with geounet's footprint columns (:data:`COLUMNS`).

    Args:
        crs: Its CRS.

    Returns:
        A GeoDataFrame with no rows and typed columns: ``class_id`` int32,
        ``class_name`` object, ``area_m2`` and ``score`` float64.
    """
    import geopandas as gpd

    return gpd.GeoDataFrame(
        {
            "class_id": np.array([], np.int32),
            "class_name": np.array([], object),
            "area_m2": np.array([], np.float64),
            "score": np.array([], np.float64),
        },
        geometry=gpd.GeoSeries([], crs=crs),
        crs=crs,
    )


def read_vector(path: str | os.PathLike[str]) -> Any:
    """Read any vector file geounet writes (or GDAL reads) into a GeoDataFrame.

    Args:
        path: A vector file: GeoParquet by its ``.parquet`` extension, anything
            else through pyogrio (GDAL).

    Returns:
        A GeoDataFrame in the file's CRS.
    """
    import geopandas as gpd

    if str(path).lower().endswith(".parquet"):
        if not installed("pyarrow"):
            raise MissingDependencyError(
                f"reading GeoParquet ({str(path)!r}) needs pyarrow, which is not installed; "
                "install it with: pip install 'geounet[arrow]'")
        return gpd.read_parquet(path)
    return gpd.read_file(path, engine="pyogrio")


def prepared(gdf: Any, fmt: str, crs: Any, out_crs: Any) -> Any:
    """A batch as it is written: in the output CRS, GeoJSON's numbers rounded.

    Args:
        gdf: Polygons in ``crs``.
        fmt: Format name (:data:`VECTOR_DRIVERS` value).
        crs: The batch's CRS.
        out_crs: The file's CRS (EPSG:4326 for GeoJSON).

    Returns:
        A GeoDataFrame (``gdf`` itself when nothing changes).
    """
    if out_crs != crs:
        gdf = gdf.to_crs(out_crs)
    if fmt == "GeoJSON":  # text: digits cost bytes (coordinates: RFC7946, 7 decimals)
        gdf = gdf.round({c: d for c, d in GEOJSON_DECIMALS.items() if c in gdf.columns})
    return gdf


def open_vector_sink(path: str | os.PathLike[str], crs: Any, fmt: str | None = None,
                     geometry_type: str = "Polygon") -> Any:
    """The streaming writer of a vector file: Arrow when pyarrow is installed, else appends.

    Args:
        path: File to write (a temporary path; the caller renames it).
        crs: CRS of the batches.
        fmt: Format name (:data:`VECTOR_DRIVERS` value); default from ``path``.
        geometry_type: ``"Polygon"``, or ``"Unknown"`` when MultiPolygons may occur.

    Returns:
        A :class:`VectorSink` (pyarrow installed: ``geounet[arrow]``) or an
        :class:`AppendVectorSink` (the default install).

    Raises:
        UnsupportedFormatError: for an unknown extension.
        MissingDependencyError: for GeoParquet without pyarrow.
    """
    if installed("pyarrow"):
        return VectorSink(path, crs, fmt, geometry_type)
    sink = AppendVectorSink(path, crs, fmt, geometry_type)
    check_dependencies(sink.fmt, path)
    return sink


def check_dependencies(fmt: str, path: str | os.PathLike[str]) -> None:
    """Check that a built-in format can be written with what is installed.

    Args:
        fmt: Format name (:data:`VECTOR_DRIVERS` value).
        path: The output, named in the error.

    Raises:
        MissingDependencyError: for GeoParquet without pyarrow (``geounet[arrow]``).
    """
    if fmt == "GeoParquet" and not installed("pyarrow"):
        raise MissingDependencyError(
            f"writing GeoParquet ({str(path)!r}) needs pyarrow, which is not installed; "
            "install it with: pip install 'geounet[arrow]', or write .gpkg, .fgb or .geojson")


def _format_of(path: str, fmt: str | None) -> str:
    ext = os.path.splitext(path)[1].lower()
    if fmt is None and ext not in VECTOR_DRIVERS:
        raise UnsupportedFormatError(
            f"output {path!r} has extension {ext or '(none)'!r}: expected one of "
            f"{', '.join(VECTOR_DRIVERS)}; rename the output")
    return fmt or VECTOR_DRIVERS[ext]


class _VectorFile:
    """What both sinks keep of their file: path, format, CRSs, geometry type, count.

    Args:
        path: File to write (a temporary path; the caller renames it).
        crs: CRS of the batches (GeoJSON is reprojected to EPSG:4326).
        fmt: Format name (:data:`VECTOR_DRIVERS` value); default from ``path``.
        geometry_type: ``"Polygon"``, or ``"Unknown"`` when MultiPolygons may occur.

    Raises:
        UnsupportedFormatError: for an unknown extension.
    """

    def __init__(self, path: str | os.PathLike[str], crs: Any, fmt: str | None,
                 geometry_type: str) -> None:
        self.path = str(path)
        self.fmt = _format_of(self.path, fmt)
        self.crs = CRS.from_user_input(crs)
        self.out_crs = CRS.from_epsg(4326) if self.fmt == "GeoJSON" else self.crs
        self.geometry_type = geometry_type
        self.count = 0


class AppendVectorSink(_VectorFile):
    """Streams batches of polygons into an OGR file without pyarrow: one append per batch.

    Each batch goes through ``pyogrio.write_dataframe`` (the first creates the
    layer ``footprints``, the next ones ``append=True``), on the calling
    thread; nothing but the batch is held in memory. The same files as
    :class:`VectorSink` (GeoJSON RFC 7946, GeoPackage, FlatGeobuf); not
    GeoParquet, which needs pyarrow.

    Args:
        path: File to write (a temporary path; the caller renames it).
        crs: CRS of the batches (GeoJSON is reprojected to EPSG:4326).
        fmt: Format name (:data:`VECTOR_DRIVERS` value); default from ``path``.
        geometry_type: ``"Polygon"``, or ``"Unknown"`` when MultiPolygons may occur.

    Raises:
        UnsupportedFormatError: for an unknown extension.
    """

    def __init__(self, path: str | os.PathLike[str], crs: Any, fmt: str | None = None,
                 geometry_type: str = "Polygon") -> None:
        super().__init__(path, crs, fmt, geometry_type)
        self._columns: list[str] | None = None

    def _append(self, gdf: Any) -> None:
        import pyogrio

        first = self._columns is None
        opts = {"RFC7946": "YES"} if first and self.fmt == "GeoJSON" else {}
        pyogrio.write_dataframe(gdf, self.path, driver=self.fmt, layer="footprints",
                                geometry_type=self.geometry_type, append=not first,
                                layer_options=opts or None)
        self._columns = list(gdf.columns)

    def write(self, gdf: Any) -> None:
        """Append a GeoDataFrame (the columns of the first batch, plus geometry)."""
        if gdf.empty:
            return
        if self._columns is not None and list(gdf.columns) != self._columns:
            gdf = gdf[self._columns]
        self._append(prepared(gdf, self.fmt, self.crs, self.out_crs))
        self.count += len(gdf)

    def close(self) -> None:
        """Finish the file (empty, with geounet's columns, if nothing was written)."""
        if self._columns is None:
            self._append(prepared(empty_frame(self.crs), self.fmt, self.crs, self.out_crs))

    def abort(self) -> None:
        """Stop writing after an error elsewhere (nothing is buffered)."""


class VectorSink(_VectorFile):
    """Streams batches of polygons into one vector file as they are finished.

    OGR formats (GeoJSON, GeoPackage, FlatGeobuf) are written by
    ``pyogrio.write_arrow`` on a background thread, fed through a bounded queue
    as an Arrow record-batch stream; GeoParquet by ``pyarrow.parquet.ParquetWriter``
    with the GeoParquet 1.0 ``geo`` metadata. Nothing but the batches in flight
    is held in memory. The attribute columns (and their Arrow types) are those
    of the first batch; later batches must have the same columns.

    Args:
        path: File to write (a temporary path; the caller renames it).
        crs: CRS of the batches (GeoJSON is reprojected to EPSG:4326).
        fmt: Format name (:data:`VECTOR_DRIVERS` value); default from ``path``.
        geometry_type: ``"Polygon"``, or ``"Unknown"`` when MultiPolygons may occur.

    Raises:
        UnsupportedFormatError: for an unknown extension.
    """

    def __init__(self, path: str | os.PathLike[str], crs: Any, fmt: str | None = None,
                 geometry_type: str = "Polygon") -> None:
        import queue

        import pyarrow as pa

        super().__init__(path, crs, fmt, geometry_type)
        self._pa = pa
        self.schema: Any = None
        self._error: BaseException | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=8)
        self._thread: Any = None
        self._pq: Any = None

    def _start(self, columns) -> None:
        """Fix the schema from the first batch's columns and open the writer."""
        import threading

        pa = self._pa
        fields = [pa.field(n, t) for n, t in columns] + [pa.field("geometry", pa.binary())]
        self.schema = pa.schema(fields)
        if self.fmt == "GeoParquet":
            import pyarrow.parquet as pq

            geo = {"version": "1.0.0", "primary_column": "geometry", "columns": {"geometry": {
                "encoding": "WKB", "geometry_types": [] if self.geometry_type == "Unknown"
                else [self.geometry_type], "crs": self.out_crs.to_json_dict()}}}
            self.schema = self.schema.with_metadata({b"geo": json.dumps(geo).encode()})
            self._pq = pq.ParquetWriter(self.path, self.schema)
        else:
            self._thread = threading.Thread(target=self._run, name="geounet-vector-writer",
                                            daemon=True)
            self._thread.start()

    def _columns_of(self, gdf) -> list:
        pa = self._pa
        attrs = gdf.drop(columns=gdf.geometry.name)
        schema = pa.Schema.from_pandas(attrs, preserve_index=False)
        def plain(t):  # GDAL's Arrow writer wants plain strings; empty columns are null
            if pa.types.is_null(t) or pa.types.is_large_string(t) or str(t) == "string_view":
                return pa.string()
            return t

        return [(f.name, plain(f.type)) for f in schema]

    def _batch(self, gdf):
        import shapely

        pa = self._pa
        gdf = prepared(gdf, self.fmt, self.crs, self.out_crs)
        cols = [pa.array(gdf[f.name].to_numpy(), type=f.type) for f in self.schema
                if f.name != "geometry"]
        cols.append(pa.array(shapely.to_wkb(gdf.geometry.to_numpy()), type=pa.binary()))
        return pa.record_batch(cols, schema=self.schema)

    def _run(self) -> None:
        import pyogrio

        def batches():
            while True:
                item = self._queue.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item

        opts = {"layer_options": {"RFC7946": "YES"}} if self.fmt == "GeoJSON" else {}
        try:
            reader = self._pa.RecordBatchReader.from_batches(self.schema, batches())
            pyogrio.write_arrow(
                reader, self.path, driver=self.fmt, layer="footprints",
                geometry_name="geometry", geometry_type=self.geometry_type,
                crs=self.out_crs.to_wkt(), **opts,
            )
        except BaseException as exc:
            self._error = exc
            while True:  # unblock a producer waiting on a full queue
                try:
                    self._queue.get_nowait()
                except Exception:
                    break

    def write(self, gdf) -> None:
        """Queue a GeoDataFrame (the columns of the first batch, plus geometry)."""
        if self._error is not None:
            raise self._error
        if gdf.empty:
            return
        if self.schema is None:
            self._start(self._columns_of(gdf))
        batch = self._batch(gdf)
        self.count += len(gdf)
        if self._thread is None:
            self._pq.write_batch(batch)
        else:
            self._queue.put(batch)

    def close(self) -> None:
        """Finish the file (empty, with geounet's columns, if nothing was written).

        Re-raises any error of the writer thread.
        """
        if self.schema is None:
            self._start(self._columns_of(empty_frame(self.crs)))
        if self._thread is None:
            self._pq.close()
            return
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """Stop writing after an error elsewhere (the file is left incomplete)."""
        if self.schema is None:
            return
        if self._thread is None:
            self._pq.close()
            return
        self._queue.put(RuntimeError("aborted"))
        self._thread.join()


@hookimpl
def geounet_vector_writers() -> dict[str, Any]:
    """Geounet's own vector formats, registered like a plugin's (see the module docstring).

    Returns:
        ``{".ext": factory}``: :func:`open_vector_sink` bound to each format of
        :data:`VECTOR_DRIVERS`.
    """
    return {ext: partial(open_vector_sink, fmt=fmt) for ext, fmt in VECTOR_DRIVERS.items()}
