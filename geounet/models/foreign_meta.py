"""Completing the metadata of a foreign model, and running one directly.

A foreign source (:mod:`geounet.models.foreign_torch`) says how to rebuild its
network, rarely how to feed it. :func:`complete_metadata` fills a
:class:`ModelMetadata` from, in order, what the user supplies (``geounet import``
options), the source's sidecar ``geounet.json``, the source itself, and defaults
for what is safe to default (bands ``1..n``, class names, tile size, threshold).
What cannot be defaulted is listed as missing:

* ``architecture`` and ``bands``/``classes`` of a plain state dict;
* band statistics (``band_mean``, ``band_std``) of every kind: without them the
  input would not be scaled as in training.

:func:`read_foreign_metadata` and :func:`load_foreign_module` are the
``read_metadata``/``load`` pair of the foreign entries of
:data:`geounet.models.modelfile.MODEL_FORMATS`, so ``geounet predict --model SRC``
runs a source that carries enough metadata and names the ``geounet import``
command that adds the rest otherwise.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from geounet.constants import DEFAULT_OVERLAP_PX, DEFAULT_THRESHOLD, DEFAULT_TILE_SIZE_PX
from geounet.errors import ModelFileError
from geounet.models.foreign_torch import (
    ForeignModel,
    foreign_state_dict,
    inspect_foreign,
    module_from_state,
)
from geounet.models.metadata import ModelMetadata, check_metadata, output_channels

MISSING_HINTS = {
    "architecture": ("the architecture", "--arch smp --arch-arg arch=unet "
                     "--arch-arg encoder_name=resnet34"),
    "bands": ("the bands", "--bands 1,2,3"),
    "classes": ("the class names", "--classes background,building"),
    "band_mean": ("the band statistics", "--stats-from SCENE.tif"),
}
"""Missing item -> (what it is, the ``geounet import`` options that supply it)."""


def _default_classes(out_channels: int) -> list[str]:
    return ["background", "foreground"] if out_channels == 1 else [
        f"class_{i}" for i in range(out_channels)]


def _pad_multiple(architecture: str, arch_args: dict[str, Any]) -> int:
    if architecture in ("smp", "smp_unet"):
        return 2 ** int(arch_args.get("encoder_depth", 5))
    if architecture == "unet" and "depth" in arch_args:
        return 2 ** int(arch_args["depth"])
    return 32


def _channels(fm: ForeignModel, merged: dict[str, Any], arch_args: dict[str, Any],
              source: str) -> tuple[list[int] | None, list[str] | None]:
    """Bands and class names, defaulted from the source's channels; checked against them."""
    bands = merged.get("bands")
    if bands is None and fm.in_channels is not None:
        bands = list(range(1, fm.in_channels + 1))
    if bands is not None and fm.in_channels is not None and len(bands) != fm.in_channels:
        raise ModelFileError(f"{source!r} takes {fm.in_channels} bands but {len(bands)} were "
                             f"given ({bands}); pass --bands with {fm.in_channels} numbers")
    classes = merged.get("classes")
    if classes is None and fm.out_channels is not None:
        classes = _default_classes(fm.out_channels)
    if classes is not None and fm.out_channels is not None:
        want = 1 if arch_args.get("two_logits") else output_channels(len(classes))
        if want != fm.out_channels:
            n = 2 if fm.out_channels == 1 else fm.out_channels
            raise ModelFileError(f"{source!r} predicts {n} classes but {len(classes)} names "
                                 f"were given ({classes}); pass --classes with {n} names")
    return bands, classes


def missing_message(source: str | Path, kind: str, missing: list[str],
                    with_command: bool = True) -> str:
    """The one-line message naming what a foreign source lacks and how to add it.

    Args:
        source: The source path.
        kind: Its kind (:data:`~geounet.models.foreign_torch.SMP_FOLDER`...).
        missing: Keys of :data:`MISSING_HINTS`.
        with_command: End with the ``geounet import`` command (else the options).

    Returns:
        The message.
    """
    what = ", ".join(f"{MISSING_HINTS[m][0]} ({m if m != 'band_mean' else 'band_mean, band_std'})"
                     for m in missing)
    options = " ".join(MISSING_HINTS[m][1] for m in missing)
    if not with_command:
        return f"{kind} {str(source)!r} lacks {what}; pass {options}"
    out = Path(source).with_suffix(".safetensors").name if Path(source).suffix else (
        f"{Path(source).name}.safetensors")
    return (f"{kind} {str(source)!r} lacks {what}, which geounet needs to run it; add them "
            f"with: geounet import {shlex.quote(str(source))} -o {out} {options} "
            "(or --band-mean M1,M2,.. --band-std S1,S2,.. for the statistics)")


def complete_metadata(fm: ForeignModel, supplied: dict[str, Any] | None = None,
                      with_command: bool = True) -> ModelMetadata:
    """Fill a :class:`ModelMetadata` for a foreign source, or say what is missing.

    Args:
        fm: The source, from :func:`~geounet.models.foreign_torch.inspect_foreign`.
        supplied: :class:`ModelMetadata` fields the user gives (``None`` values
            are ignored; ``arch_args`` are merged over the source's; ``license``
            is recorded with the source).
        with_command: Whether a missing-items error names the ``geounet import``
            command (``predict --model``) or only the options (``geounet import``).

    Returns:
        The checked metadata; ``training["imported_from"]`` records the source,
        its format and licence.

    Raises:
        ModelFileError: listing the missing items (one line), or for bands or
            class names that do not fit the weights.
    """
    given = {k: v for k, v in (supplied or {}).items()
             if v is not None or k == "background_class"}  # background None: every class
    license_ = given.pop("license", None)
    merged = {**fm.known, **given}
    source = str(fm.path)
    architecture = merged.pop("architecture", None) or fm.architecture
    arch_args = {**fm.arch_args, **merged.pop("arch_args", {})}
    bands, classes = _channels(fm, merged, arch_args, source)
    missing = [name for name, value in (("architecture", architecture), ("bands", bands),
                                        ("classes", classes)) if value is None]
    if merged.get("band_mean") is None or merged.get("band_std") is None:
        missing.append("band_mean")
    if missing:
        raise ModelFileError(missing_message(fm.path, fm.kind, missing, with_command))
    assert bands is not None and classes is not None and architecture is not None
    binary = len(classes) == 2
    training = dict(merged.pop("training", {}))
    training["imported_from"] = {**fm.origin, "source": source, "license": license_}
    meta = ModelMetadata(
        name=merged.get("name") or fm.path.stem, architecture=architecture,
        arch_args=arch_args, bands=list(bands),
        band_names=merged.get("band_names") or [f"band_{b}" for b in bands],
        band_mean=[float(v) for v in merged["band_mean"]],
        band_std=[float(v) for v in merged["band_std"]], classes=list(classes),
        gsd_m=merged.get("gsd_m"), tile_size_px=merged.get("tile_size_px", DEFAULT_TILE_SIZE_PX),
        overlap_px=merged.get("overlap_px", DEFAULT_OVERLAP_PX),
        threshold=merged.get("threshold", DEFAULT_THRESHOLD),
        pad_multiple=merged.get("pad_multiple", _pad_multiple(architecture, arch_args)),
        training=training, evaluation=merged.get("evaluation", {}),
        background_class=merged.get("background_class", 0 if binary else None),
        class_colors=merged.get("class_colors"),
    )
    check_metadata(meta, source)
    return meta


def read_foreign_metadata(path: Path) -> ModelMetadata:
    """``read_metadata`` of the foreign model formats: the source and its sidecar alone.

    Args:
        path: A foreign source.

    Returns:
        Its metadata.

    Raises:
        ModelFileError: naming the missing items and the ``geounet import``
            command that adds them, or as :func:`inspect_foreign`.
    """
    return complete_metadata(inspect_foreign(path))


def load_foreign_module(path: Path, meta: ModelMetadata) -> Any:
    """``load`` of the foreign model formats: rebuild the network, load the weights.

    Args:
        path: The foreign source.
        meta: Its metadata (from :func:`read_foreign_metadata`).

    Returns:
        The ``torch.nn.Module`` on CPU in eval mode.

    Raises:
        ModelFileError, UnknownModelError: as
            :func:`~geounet.models.foreign_torch.module_from_state`.
    """
    return module_from_state(meta, foreign_state_dict(path), path)

