# -*- coding: utf-8 -*-

"""A Processing provider that registers geounet's algorithm from Python.

For PyQGIS scripts, standalone applications and plugin authors who do not use
QGIS's Scripts folder::

    import sys
    sys.path.append("/path/to/geounet/plugins/qgis")
    from geounet_provider import register
    provider = register()  # after QgsApplication.initQgis() (and Processing.initialize())
    processing.run("geounet:geounet_segment", {"INPUT": "scene.tif",
                                               "OUTPUT": "footprints.gpkg"})

The algorithm itself lives in ``geounet_segment.py`` beside this file (the same
file QGIS loads as a script) and is imported only when the provider loads its
algorithms. This module defines no algorithm class at its top level, so QGIS's
script loader ignores it when ``plugins/qgis/`` is a Scripts folder.
"""

import importlib.util
import os
import sys

from qgis.core import QgsApplication, QgsProcessingProvider

#: The script file holding the algorithm, next to this module.
ALGORITHM_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "geounet_segment.py")


def _algorithm_class():
    """Import ``geounet_segment.py`` (once) and return its algorithm class."""
    module = sys.modules.get("geounet_segment")
    if module is None or not hasattr(module, "GeounetSegmentAlgorithm"):
        spec = importlib.util.spec_from_file_location("geounet_segment", ALGORITHM_FILE)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules["geounet_segment"] = module
    return module.GeounetSegmentAlgorithm


class GeounetProvider(QgsProcessingProvider):
    """Processing provider ``geounet`` with the algorithm ``geounet:geounet_segment``."""

    def id(self):
        """Return the provider's fixed id (the prefix of its algorithm ids)."""
        return "geounet"

    def name(self):
        """Return the provider's display name."""
        return "geounet"

    def longName(self):
        """Return the provider's long display name."""
        return "geounet (U-Net segmentation of GeoTIFFs)"

    def icon(self):
        """Return the provider's icon (QGIS's generic Processing icon)."""
        return QgsApplication.getThemeIcon("/processingAlgorithm.svg")

    def loadAlgorithms(self):
        """Add the geounet algorithm to the provider."""
        self.addAlgorithm(_algorithm_class()())


def register():
    """Create the provider and add it to QGIS's Processing registry.

    Call it after ``QgsApplication.initQgis()``.

    Returns:
        The registered :class:`GeounetProvider`; keep a reference to it and
        pass it to :func:`unregister` to remove it again.

    Raises:
        RuntimeError: if the registry refuses the provider (a provider with the
            id ``geounet`` is already registered).
    """
    provider = GeounetProvider()
    if not QgsApplication.processingRegistry().addProvider(provider):
        raise RuntimeError("could not register the geounet Processing provider (is one "
                           "with the id 'geounet' already registered?)")
    return provider


def unregister(provider):
    """Remove a provider added by :func:`register` from the Processing registry.

    Args:
        provider: The object :func:`register` returned.
    """
    QgsApplication.processingRegistry().removeProvider(provider)
