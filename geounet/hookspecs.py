"""The hook specifications of geounet's plugins (pluggy), and the markers.

This module imports nothing of geounet, so any module can implement a hook
(``@hookimpl``) without an import cycle; :mod:`geounet.hooks` holds the plugin
manager, which registers geounet's own implementations
(:data:`geounet.hooks.DEFAULT_PLUGINS`) the same way as installed plugins.
Every hook is documented in ``docs/plugins.md`` (a test checks that).
"""

from __future__ import annotations

from typing import Any

import pluggy

PROJECT = "geounet"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class GeounetSpecs:
    """The hook specifications."""

    @hookspec
    def geounet_postprocess_classes(self, classes: Any, probs: Any, row_off: int,
                                    context: dict[str, Any]) -> Any:
        """Change a finished strip of the class raster before it is written and vectorised.

        Called once per strip, top to bottom (strips are one tile stride high
        and the full scene width), so an implementation sees the scene in
        order without holding it.

        Args:
            classes: ``(n_rows, width)`` uint8 class ids (255 = nodata).
            probs: ``(k, n_rows, width)`` float32 probabilities (``k`` = 1 for
                binary models).
            row_off: Scene row of the strip's first row.
            context: ``dict`` with ``crs``, ``transform`` (of the whole
                scene), ``class_names``, ``threshold``, ``scene`` (path) and
                ``vectorize`` (the run's :class:`~geounet.config.VectorizeConfig`).

        Returns:
            A new ``(n_rows, width)`` uint8 array, or ``None`` to keep
            ``classes``. Results of several plugins are applied in turn.
        """

    @hookspec
    def geounet_postprocess_footprints(self, footprints: Any, context: dict[str, Any]) -> Any:
        """Change a batch of finished polygons before it is written.

        geounet's own finishing (hole filling, splitting, minimum area,
        simplification or regularisation, ``area_m2``) is an implementation of
        this hook that runs first (``tryfirst``); plugins see its result.

        Args:
            footprints: GeoDataFrame in the scene's CRS with ``class_id``,
                ``class_name``, ``area_m2``, ``score`` and ``geometry``; more
                columns may be added (keep their types the same in every batch).
            context: As for :meth:`geounet_postprocess_classes`.

        Returns:
            A GeoDataFrame, or ``None`` to keep the batch as it is. Results of
            several plugins are applied in turn.
        """

    @hookspec
    def geounet_vector_writers(self) -> Any:
        """Add output writers chosen by file extension.

        geounet's own formats (``.geojson``, ``.gpkg``, ``.fgb``, ``.parquet``)
        are an implementation of this hook too; where two give the same
        extension, geounet's own wins.

        Returns:
            ``{".ext": factory}`` where ``factory(path, crs)`` returns an
            object with ``write(gdf)``, ``close()`` and ``abort()`` (see
            :class:`geounet.io.vector.VectorSink`); ``path`` is a temporary file
            geounet renames on success. A factory that also takes a
            ``geometry_type`` keyword gets ``"Polygon"``, or ``"Unknown"`` when
            MultiPolygons may occur.
        """
