"""The plugin manager (pluggy): geounet's own hook implementations and installed plugins.

A plugin is a module (or object) with functions marked
``@geounet.hooks.hookimpl`` named after the specifications in
:mod:`geounet.hookspecs`, registered in the ``geounet`` entry-point group of its
package::

    [project.entry-points.geounet]
    my_plugin = "my_package.geounet_plugin"

geounet's own writers and footprint finishing are registered the same way
(:data:`DEFAULT_PLUGINS`, as datasette does with its ``DEFAULT_PLUGINS``), and
every hook call goes through pluggy (:class:`HookChain`), so tracing and
monitoring see them all.
"""

from __future__ import annotations

import logging
import os
from functools import lru_cache
from types import ModuleType
from typing import Any

import pluggy

from geounet.hookspecs import PROJECT, GeounetSpecs, hookimpl, hookspec
from geounet.io import vector as _builtin_writers
from geounet.pipeline import postprocess as _builtin_postprocess

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "geounet"
DISABLE_ENV = "GEOUNET_DISABLE_PLUGINS"

DEFAULT_PLUGINS: dict[str, ModuleType] = {
    "geounet.io.vector": _builtin_writers,
    "geounet.pipeline.postprocess": _builtin_postprocess,
}
"""geounet's own hook implementations, registered before any installed plugin (also
with ``GEOUNET_DISABLE_PLUGINS=1``)."""

__all__ = ["DEFAULT_PLUGINS", "PROJECT", "GeounetSpecs", "HookChain", "has_implementations",
           "hookimpl", "hookspec", "plugin_manager", "postprocess_classes",
           "postprocess_footprints", "vector_writers"]


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if pm.has_plugin(ep.name):
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # one broken plugin must not break the rest
            dist = getattr(ep, "dist", None)
            pkg = dist.metadata["Name"] if dist is not None else "?"
            log.error("geounet plugin %r (%s from package %r) failed to load: %s",
                      ep.name, ep.value, pkg, exc)
            continue
        pm.register(plugin, name=ep.name)


@lru_cache(maxsize=1)
def plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager: :data:`DEFAULT_PLUGINS`, then every installed plugin.

    Set ``GEOUNET_DISABLE_PLUGINS=1`` to load no installed plugin (geounet's
    own are always registered).

    Returns:
        The ``pluggy.PluginManager`` of project ``geounet``.
    """
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(GeounetSpecs)
    for name, module in DEFAULT_PLUGINS.items():
        pm.register(module, name=name)
    if os.environ.get(DISABLE_ENV, "") not in ("1", "true", "yes"):
        _load_entry_points(pm)
    return pm


class HookChain:
    """Every implementation of a hook called in turn, each given the previous result.

    pluggy calls all implementations with the same arguments; geounet's
    post-processing hooks instead chain them (a plugin sees the frame the
    previous one returned). Each implementation is called through its own
    pluggy hook caller (``PluginManager.subset_hook_caller``), in pluggy's order
    (``tryfirst`` first, then the most recently registered), so pluggy's
    tracing and call monitoring apply. Build one per run: plugins registered
    later are not seen.

    Args:
        name: Hook name, e.g. ``"geounet_postprocess_footprints"``.
        arg: The argument that is chained (``"classes"``, ``"footprints"``).
    """

    def __init__(self, name: str, arg: str) -> None:
        pm = plugin_manager()
        impls = [i for i in reversed(getattr(pm.hook, name).get_hookimpls())
                 if not (i.hookwrapper or i.wrapper)]
        plugins = [i.plugin for i in impls]
        self.name = name
        self.arg = arg
        self.plugin_names = [i.plugin_name for i in impls]
        self._callers = [pm.subset_hook_caller(name, [p for p in plugins if p is not keep])
                         for keep in plugins]

    def __len__(self) -> int:
        return len(self._callers)

    def __call__(self, value: Any, **kwargs: Any) -> Any:
        """Call each implementation in turn.

        Args:
            value: The chained argument's first value.
            **kwargs: The hook's other arguments.

        Returns:
            The last non-``None`` result (``value`` when every implementation
            returned ``None``).
        """
        for call in self._callers:
            out = call(**{self.arg: value}, **kwargs)
            if out and out[0] is not None:
                value = out[0]
        return value


def postprocess_classes(classes: Any, probs: Any, row_off: int, context: dict[str, Any]) -> Any:
    """Apply every ``geounet_postprocess_classes`` implementation in turn (see :class:`HookChain`).

    Kept for callers of geounet 0.1; a run builds its :class:`HookChain` once
    instead of once per strip.

    Args:
        classes: ``(n_rows, width)`` uint8 class ids.
        probs: ``(k, n_rows, width)`` float32 probabilities.
        row_off: Scene row of the strip's first row.
        context: As documented in :mod:`geounet.hookspecs`.

    Returns:
        The ``(n_rows, width)`` uint8 classes after every implementation.
    """
    chain = HookChain("geounet_postprocess_classes", "classes")
    return chain(classes, probs=probs, row_off=row_off, context=context)


def postprocess_footprints(footprints: Any, context: dict[str, Any]) -> Any:
    """Apply every ``geounet_postprocess_footprints`` implementation in turn.

    Kept for callers of geounet 0.1; a run builds its :class:`HookChain` once
    instead of once per batch.

    geounet's own finishing (:mod:`geounet.pipeline.postprocess`) runs first.

    Args:
        footprints: GeoDataFrame of polygons in the scene's CRS.
        context: As documented in :mod:`geounet.hookspecs`; geounet's own
            finishing needs ``vectorize`` and ``transform``.

    Returns:
        The GeoDataFrame after every implementation.
    """
    chain = HookChain("geounet_postprocess_footprints", "footprints")
    return chain(footprints, context=context)


def vector_writers() -> dict[str, Any]:
    """Extension -> writer factory from every ``geounet_vector_writers`` implementation.

    Returns:
        ``{".ext": factory}`` with lower-case extensions; geounet's own formats
        win over a plugin's for the same extension.
    """
    out: dict[str, Any] = {}
    for mapping in plugin_manager().hook.geounet_vector_writers():
        out.update({k.lower(): v for k, v in (mapping or {}).items()})
    return out


def has_implementations(name: str, *, plugins_only: bool = False) -> bool:
    """Whether any implementation of hook ``name`` is registered.

    Args:
        name: Hook name.
        plugins_only: Count only installed plugins, not :data:`DEFAULT_PLUGINS`.

    Returns:
        True if at least one (plugin) implementation exists.
    """
    impls = getattr(plugin_manager().hook, name).get_hookimpls()
    if plugins_only:
        impls = [i for i in impls if i.plugin_name not in DEFAULT_PLUGINS]
    return bool(impls)
