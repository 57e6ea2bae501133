"""``geounet import``: a foreign torch model to a geounet model file.

:func:`import_model` reads a foreign source (:mod:`geounet.models.foreign_torch`:
an smp ``save_pretrained`` folder, a torchgeo checkpoint, a plain state dict),
completes its metadata from the caller's options
(:func:`~geounet.models.foreign_meta.complete_metadata`), checks that the weights
load into the rebuilt network, and writes a ``.safetensors`` model file, or an
``.onnx`` graph through :func:`geounet.export.export_onnx`. The source path, its
format, its hyper-parameters and the licence are recorded in the metadata's
``training["imported_from"]``.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from geounet.context import context_metadata
from geounet.errors import BandIndexError, InvalidOptionError, UnsupportedFormatError
from geounet.io.checksum import file_sha256
from geounet.measure_context import measure_module
from geounet.models.foreign_meta import complete_metadata
from geounet.models.foreign_torch import foreign_state_dict, inspect_foreign, module_from_state
from geounet.models.safetensors_file import save_model

log = logging.getLogger(__name__)

MAX_STATS_PX = 2048
"""Longest side, in pixels, of the decimated read that :func:`scene_statistics` uses."""


def scene_statistics(scene: str | os.PathLike, bands: list[int]) -> tuple[list[float], list[float]]:
    """Per-band mean and standard deviation of a scene, over its valid pixels.

    The scene is read at most :data:`MAX_STATS_PX` pixels on its longest side
    (GDAL picks an overview or decimates), so a large scene costs seconds.

    Args:
        scene: A raster GDAL reads.
        bands: 1-based bands, in model input order.

    Returns:
        ``(mean, std)``: lists of floats in the scene's units (e.g. DN), one per band.

    Raises:
        NotARasterError, InputNotFoundError: as :func:`geounet.io.read.open_raster`.
        BandIndexError: for a band the scene does not have.
    """
    import numpy as np

    from geounet.io.read import band_statistics, open_raster

    with open_raster(scene) as ds:
        bad = [b for b in bands if not 1 <= b <= ds.count]
        if bad:
            raise BandIndexError(f"--stats-from scene {str(scene)!r} has {ds.count} bands, so "
                                 f"band(s) {bad} do not exist; pass --bands within 1..{ds.count}")
        scale = max(1, -(-max(ds.height, ds.width) // MAX_STATS_PX))
        shape = (max(1, ds.height // scale), max(1, ds.width // scale))
        data = ds.read(bands, out_shape=(len(bands), *shape))
        masks = ds.read_masks(bands, out_shape=(len(bands), *shape))
    valid = np.all(masks > 0, axis=0) & np.all(np.isfinite(data), axis=0)
    return band_statistics(data, valid)


def _write(module: Any, meta: Any, output: Path, overwrite: bool) -> Path:
    """Write ``module`` with ``meta`` as ``.safetensors``, or as ``.onnx`` through a temp file."""
    from geounet.io.atomic import atomic_path

    suffix = output.suffix.lower()
    if suffix == ".safetensors":
        with atomic_path(output, overwrite=overwrite) as tmp:  # refuses an existing output
            save_model(module, meta, tmp)
        return output
    if suffix != ".onnx":
        raise UnsupportedFormatError(f"output {str(output)!r} has suffix {suffix!r}; expected "
                                     ".safetensors (geounet model file) or .onnx")
    from geounet.export import export_onnx

    with tempfile.TemporaryDirectory(prefix="geounet-import-") as tmpdir:
        staged = save_model(module, meta, Path(tmpdir) / f"{output.stem}.safetensors")
        return export_onnx(staged, output, overwrite=overwrite)


def import_model(source: str | os.PathLike, output: str | os.PathLike,
                 stats_from: str | os.PathLike | None = None, overwrite: bool = False,
                 context_from: str | os.PathLike | None = None, **supplied: Any) -> Path:
    """Turn a foreign torch model into a geounet model file.

    Args:
        source: An smp ``save_pretrained`` folder, a torchgeo ``.ckpt`` or a
            ``.pth``/``.pt`` state dict.
        output: ``.safetensors`` (geounet model file) or ``.onnx`` to write.
        stats_from: A scene whose band statistics become ``band_mean`` and
            ``band_std`` (read on the model's bands), unless those are supplied.
        overwrite: Replace an existing output.
        context_from: A scene to measure the model's context on
            (:mod:`geounet.context`; default ``stats_from``, else seeded
            synthetic regions, recorded as ``context.scene = "synthetic"``).
        **supplied: :class:`~geounet.models.metadata.ModelMetadata` fields
            (``bands``, ``band_mean``, ``band_std``, ``classes``, ``gsd_m``,
            ``tile_size_px``, ``threshold``, ``architecture``, ``arch_args``...)
            and ``license``; ``None`` means "not given".

    Returns:
        The path written.

    Raises:
        ModelFileError: for a source that needs code to load, missing items
            (all listed, with the options that supply them) or weights that do
            not fit the architecture.
        OutputExistsError: if ``output`` exists and ``overwrite`` is false.
        UnsupportedFormatError: for an output suffix other than ``.safetensors``/``.onnx``.
    """
    fm = inspect_foreign(source)
    if stats_from is not None and supplied.get("band_mean") is None:
        bands = supplied.get("bands") or fm.known.get("bands") or (
            list(range(1, fm.in_channels + 1)) if fm.in_channels else None)
        if bands is not None:
            mean, std = scene_statistics(stats_from, list(bands))
            supplied.update(band_mean=mean, band_std=std)
            log.info("band statistics of %s on bands %s: mean %s, std %s", stats_from, bands,
                     mean, std)
    meta = complete_metadata(fm, supplied, with_command=False)
    weights = fm.path / "model.safetensors" if fm.path.is_dir() else fm.path
    if weights.is_file():
        meta.training["imported_from"]["sha256"] = file_sha256(weights)
    if stats_from is not None:
        meta.training["imported_from"]["stats_from"] = str(stats_from)
    module = module_from_state(meta, foreign_state_dict(fm.path), fm.path)
    try:
        measure = measure_module(module, meta, context_from or stats_from)
        changes = context_metadata(meta, measure, retile=supplied.get("tile_size_px") is None)
        if supplied.get("overlap_px") is not None:  # what the user gave wins
            changes.pop("overlap_px")
        meta = replace(meta, **changes)
    except InvalidOptionError as exc:  # a tile or scene too small to measure on
        log.warning("context of %s not measured: %s", fm.path, exc)
    path = _write(module, meta, Path(output), overwrite)
    log.info("imported %s (%s, %s) as %s", fm.path, fm.kind, meta.architecture, path)
    return path
