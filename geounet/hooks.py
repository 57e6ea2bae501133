"""Pipeline hooks for plugins (pluggy).

A plugin is a module (or object) with functions marked ``@geounet.hooks.hookimpl``
named after the hook specifications below, registered in the ``geounet``
entry-point group of its package::

    [project.entry-points.geounet]
    my_plugin = "my_package.geounet_plugin"

geounet's own behaviour goes through the same hooks where it has any. Every
hook is documented in ``docs/plugins.md`` (a test checks that).
"""

from __future__ import annotations

import logging
import os
from functools import lru_cache

import pluggy

log = logging.getLogger(__name__)

PROJECT = "geounet"
ENTRY_POINT_GROUP = "geounet"
DISABLE_ENV = "GEOUNET_DISABLE_PLUGINS"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class GeounetSpecs:
    """The hook specifications."""

    @hookspec
    def geounet_postprocess_classes(self, classes, probs, row_off, context):
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
                scene), ``class_names``, ``threshold``, ``scene`` (path).

        Returns:
            A new ``(n_rows, width)`` uint8 array, or ``None`` to keep
            ``classes``. Results of several plugins are applied in turn.
        """

    @hookspec
    def geounet_postprocess_footprints(self, footprints, context):
        """Change a batch of finished polygons before it is written.

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
    def geounet_vector_writers(self):
        """Add output writers chosen by file extension.

        Returns:
            ``{".ext": factory}`` where ``factory(path, crs)`` returns an
            object with ``write(gdf)``, ``close()`` and ``abort()`` (see
            :class:`geounet.io.write.VectorSink`); ``path`` is a temporary file
            geounet renames on success.
        """


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if pm.has_plugin(ep.name):
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # noqa: BLE001 - one broken plugin must not break the rest
            dist = getattr(ep, "dist", None)
            pkg = dist.metadata["Name"] if dist is not None else "?"
            log.error("geounet plugin %r (%s from package %r) failed to load: %s",
                      ep.name, ep.value, pkg, exc)
            continue
        pm.register(plugin, name=ep.name)


@lru_cache(maxsize=1)
def plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager with every installed ``geounet`` plugin.

    Set ``GEOUNET_DISABLE_PLUGINS=1`` to load none.
    """
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(GeounetSpecs)
    if os.environ.get(DISABLE_ENV, "") not in ("1", "true", "yes"):
        _load_entry_points(pm)
    return pm


def postprocess_classes(classes, probs, row_off, context):
    """Apply every ``geounet_postprocess_classes`` implementation in turn."""
    pm = plugin_manager()
    for impl in reversed(pm.hook.geounet_postprocess_classes.get_hookimpls()):
        out = impl.function(classes=classes, probs=probs, row_off=row_off, context=context)
        if out is not None:
            classes = out
    return classes


def postprocess_footprints(footprints, context):
    """Apply every ``geounet_postprocess_footprints`` implementation in turn."""
    pm = plugin_manager()
    for impl in reversed(pm.hook.geounet_postprocess_footprints.get_hookimpls()):
        out = impl.function(footprints=footprints, context=context)
        if out is not None:
            footprints = out
    return footprints


def vector_writers() -> dict:
    """Extension -> writer factory from every ``geounet_vector_writers`` implementation."""
    out: dict = {}
    for mapping in plugin_manager().hook.geounet_vector_writers():
        out.update({k.lower(): v for k, v in (mapping or {}).items()})
    return out


def has_implementations(name: str) -> bool:
    """Whether any plugin implements hook ``name`` (lets the pipeline skip work)."""
    return bool(getattr(plugin_manager().hook, name).get_hookimpls())
