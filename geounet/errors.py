"""Errors raised by geounet.

Every error derives from :class:`GeounetError`. Each subclass also inherits the
built-in exception it refines (as rasterio's ``RasterioIOError(RasterioError,
OSError)``), so callers can catch either ``GeounetError`` or, say,
``FileNotFoundError``.

Messages name the bad value, what was expected and how to fix it. The CLI turns
them into a one-line message and a non-zero exit status.
"""

from __future__ import annotations


class GeounetError(Exception):
    """Root of every error geounet raises on purpose."""


class InputNotFoundError(GeounetError, FileNotFoundError):
    """An input file (scene, labels, model) does not exist."""


class NotARasterError(GeounetError, OSError):
    """A file exists but GDAL/rasterio cannot open it as a raster."""


class MissingCRSError(GeounetError, ValueError):
    """A raster or vector has no coordinate reference system."""


class BandIndexError(GeounetError, IndexError):
    """A 1-based band index is outside ``1..count`` of the scene."""


class BandCountError(GeounetError, ValueError):
    """The number of selected bands differs from what the model expects."""


class EmptySceneError(GeounetError, ValueError):
    """Every pixel of the scene (or of the chosen region) is nodata."""


class TilingError(GeounetError, ValueError):
    """Tile size, overlap or batch size values that cannot make a tiling plan."""


class OutputExistsError(GeounetError, FileExistsError):
    """An output file exists and ``overwrite`` was not requested."""


class OutputNotWritableError(GeounetError, PermissionError):
    """The folder of an output does not exist or cannot be written."""


class UnsupportedFormatError(GeounetError, ValueError):
    """An output or input file extension geounet has no writer/reader for."""


class ModelFileError(GeounetError, ValueError):
    """A model file is corrupt, incomplete or for another architecture."""


class UnknownModelError(GeounetError, LookupError):
    """A model name is neither a file nor a bundled model nor a registered architecture."""

    def __str__(self) -> str:  # LookupError subclasses like KeyError quote; keep plain text
        return str(self.args[0]) if self.args else ""


class DeviceError(GeounetError, RuntimeError):
    """A requested torch device (``cuda:1``...) is not available."""


class LabelError(GeounetError, ValueError):
    """Training labels that are empty, unreadable or do not overlap the scene."""


class RegionError(GeounetError, ValueError):
    """A region/bbox specification that cannot be parsed or lies outside the scene."""


class CancelledError(GeounetError, InterruptedError):
    """The run was cancelled through the progress callback."""


class InvalidOptionError(GeounetError, ValueError):
    """An option value that is out of range, not understood or conflicts with another."""


class MissingDependencyError(GeounetError, ImportError):
    """An optional package needed for a feature is not installed (the message names the extra)."""


class SchedulerError(GeounetError, ConnectionError):
    """A Dask scheduler cannot be reached."""


class PluginError(GeounetError, RuntimeError):
    """A plugin (entry point or hook implementation) failed or returned something unusable."""
