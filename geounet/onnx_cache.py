"""ONNX graphs of torch models, exported on demand and cached.

The onnxruntime and OpenVINO runtimes run ONNX graphs; a ``.safetensors``
model runs as the ONNX graph beside it when there is one of the right tile size,
else it is exported once per tile size (:func:`geounet.export.export_onnx`) and
the graph is kept in the user cache folder: ``$GEOUNET_CACHE_DIR``, else
``$XDG_CACHE_HOME/geounet``, else ``~/.cache/geounet``, under ``onnx/``.

An entry's name holds everything the graph depends on: the model file's
SHA-256, the tile size, the opset and the exporter's versions (torch, onnx,
geounet), so a changed model or a new torch gets a new graph. Each graph is
written to a temporary file and renamed into place, with its own SHA-256 beside
it (``.sha256``); an entry whose bytes do not match (a truncated or corrupt
file) is rebuilt. Two runs that export the same entry at once each write their
own temporary file and rename it; both results are the same graph.
"""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

from geounet import __version__
from geounet.errors import OutputNotWritableError
from geounet.export import export_onnx
from geounet.io.checksum import file_sha256
from geounet.models.metadata import import_optional
from geounet.models.modelfile import LoadedModel
from geounet.models.onnx_metadata import companion_graph, onnx_tile_size
from geounet.pipeline.tiling import padded_size

log = logging.getLogger(__name__)

OPSET = 17
"""ONNX opset of the cached graphs."""


def cache_dir() -> Path:
    """The geounet cache folder (see the module docstring); created on first use.

    Returns:
        The folder.
    """
    root = os.environ.get("GEOUNET_CACHE_DIR")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(xdg, "geounet")
    return Path(root)


def entry_name(loaded: LoadedModel, tile_px: int) -> str:
    """The cache entry's file name for a model and a graph tile size.

    Args:
        loaded: A ``.safetensors`` model.
        tile_px: The graph's tile size in pixels (a multiple of the model's
            ``pad_multiple``).

    Returns:
        ``<model stem>-<sha256[:16]>-t<tile>-op<opset>-torch<v>-onnx<v>-geounet<v>.onnx``.
    """
    import torch

    onnx = import_optional("onnx")
    digest = file_sha256(loaded.path)[:16]
    versions = f"torch{torch.__version__}-onnx{onnx.__version__}-geounet{__version__}"
    return f"{Path(loaded.path).stem}-{digest}-t{tile_px}-op{OPSET}-{versions}.onnx"


def _is_intact(path: Path) -> bool:
    sums = path.with_name(path.name + ".sha256")
    try:
        return sums.read_text().strip() == file_sha256(path)
    except OSError:
        return False


def onnx_graph(loaded: LoadedModel, tile_size_px: int) -> Path:
    """An ONNX graph of ``loaded`` for tiles of ``tile_size_px``: the file, or a cached export.

    A ``.safetensors`` model's companion graph (the bundled models ship one,
    :func:`~geounet.models.onnx_metadata.companion_graph`) is used when its tile
    size fits; otherwise the model is exported once and cached.

    Args:
        loaded: A loaded model; an ``.onnx`` model is returned as it is.
        tile_size_px: The run's tile size in pixels; the graph's is rounded up
            to the model's ``pad_multiple`` (tiles are padded to it).

    Returns:
        The ``.onnx`` path.

    Raises:
        MissingDependencyError: if torch or onnx (needed to export) is missing.
        OutputNotWritableError: if the cache folder cannot be written.
    """
    if loaded.format == "onnx":
        return Path(loaded.path)
    tile = padded_size(tile_size_px, loaded.metadata.pad_multiple)
    companion = companion_graph(loaded.path)
    if companion is not None and onnx_tile_size(companion) == tile:
        log.debug("ONNX graph beside the model: %s", companion)
        return companion
    folder = cache_dir() / "onnx"
    path = folder / entry_name(loaded, tile)
    if path.exists() and _is_intact(path):
        log.debug("ONNX graph from the cache: %s", path)
        return path
    if path.exists():
        log.warning("cached ONNX graph %s is corrupt; exporting it again", path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputNotWritableError(
            f"cannot create the ONNX cache folder {str(folder)!r} ({exc}); set GEOUNET_CACHE_DIR "
            "to a folder you can write to") from exc
    tmp = folder / f".{path.stem}.{uuid.uuid4().hex[:8]}.onnx"
    try:
        export_onnx(loaded, tmp, tile_size_px=tile, opset=OPSET)
        sums = tmp.with_name(tmp.name + ".sha256")
        sums.write_text(file_sha256(tmp) + "\n")
        os.replace(tmp, path)
        os.replace(sums, path.with_name(path.name + ".sha256"))
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + ".sha256")):
            leftover.unlink(missing_ok=True)
    log.info("exported %s to ONNX for tiles of %d px (cached in %s)", loaded.metadata.name,
             tile, folder)
    return path
