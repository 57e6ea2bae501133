"""ONNX models made for other tools: Deepness's metadata and GeoDeep's conventions.

A graph without geounet's own metadata (:data:`~geounet.models.metadata.METADATA_KEY`)
is read here when it carries the keys the Deepness QGIS plugin reads
(qgis-plugin-deepness.readthedocs.io, "Adding metadata to ONNX model"; GeoDeep
reads the same keys):

* ``model_type`` must be ``"Segmentor"``; other model types are refused;
* classes from ``class_names`` (or ``names``): a dict id -> name, JSON or a
  Python literal; a single sigmoid output with one name gets a background
  class 0 in front, as Deepness adds one;
* bands 1..C from the graph's input shape ``(b, C, h, w)``;
* tile size from the input shape, else ``tile_size`` (what Deepness's code
  reads) or ``tiles_size`` (what its docs name); overlap from
  ``tiles_overlap`` (percent of the tile); threshold from ``seg_thresh``; GSD
  from ``resolution`` (cm per pixel) / 100;
* input scaling: with ``standardization_mean`` and ``standardization_std``,
  Deepness's ``(x / 255 - mean) / std``, which is geounet's standardisation
  with statistics 255 times those; without them, GeoDeep's rule
  (:class:`GeoDeepScaler`), which on uint8 scenes is Deepness's ``x / 255``.

What geounet does differently from those tools: multi-class outputs are
argmaxed without zeroing probabilities under ``seg_thresh`` first, a
two-channel output is read as the probability of class 1 against the
threshold (:func:`fit_output`), and ``seg_small_segment`` (Deepness's median
blur, GeoDeep's sieve) is recorded in ``training`` but not applied (geounet's
``--sieve`` is the minimum mapping unit). Nothing here imports onnx or
rasterio.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geounet.constants import DEFAULT_OVERLAP_PX, DEFAULT_THRESHOLD, DEFAULT_TILE_SIZE_PX
from geounet.errors import ModelFileError
from geounet.models.metadata import ModelMetadata, check_metadata

BACKGROUND_NAMES = ("background", "bg", "none", "nodata", "no_data", "other", "unlabeled",
                    "unlabelled")
"""Lower-case first class names (leading ``_`` dropped) taken as a background class 0."""


@dataclass(frozen=True)
class GraphShape:
    """Input and output shapes of an ONNX graph, as its metadata declares them.

    Attributes:
        in_channels: Input channels ``C`` of ``(b, C, h, w)`` (0 when dynamic).
        tile_px: Input height in pixels (0 when dynamic).
        out_channels: Channels of a ``(b, k, h, w)`` output (0 when dynamic);
            1 for a ``(b, h, w)`` output.
        out_rank: Rank of the first output (3 or 4 for segmentation).
        n_outputs: Number of graph outputs.
    """

    in_channels: int
    tile_px: int
    out_channels: int
    out_rank: int
    n_outputs: int = 1


def _value(props: dict[str, str], key: str, source: str) -> Any:
    """A JSON-encoded ``metadata_props`` value (a Python literal is accepted too)."""
    text = props[key]
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError) as exc:
        raise ModelFileError(
            f"ONNX model {source!r} has metadata {key}={text!r}, expected a JSON value; "
            f"rewrite it with json.dumps (docs/models.md)") from exc


def _class_names(props: dict[str, str], source: str) -> list[str] | None:
    """``class_names`` (or ``names``) as a list by class id, or ``None`` when absent."""
    key = next((k for k in ("class_names", "names") if k in props), None)
    if key is None:
        return None
    raw = _value(props, key, source)
    if isinstance(raw, list):
        if len(raw) != 1:
            raise ModelFileError(
                f"ONNX model {source!r} lists class names for {len(raw)} outputs; geounet runs "
                "models with one segmentation output: export a graph with a single output")
        raw = raw[0]
    if not isinstance(raw, dict):
        raise ModelFileError(
            f"ONNX model {source!r} has {key}={raw!r}, expected a dict of class id -> name "
            "such as {\"0\": \"background\", \"1\": \"building\"}")
    try:
        items = sorted((int(k), str(v)) for k, v in raw.items())
    except ValueError as exc:
        raise ModelFileError(f"ONNX model {source!r} has {key} ids {list(raw)}, expected "
                             "integers 0, 1, 2...") from exc
    if [i for i, _ in items] != list(range(len(items))):
        raise ModelFileError(
            f"ONNX model {source!r} has {key} ids {[i for i, _ in items]}, expected "
            f"consecutive ids 0..{len(items) - 1}; number the classes from 0 without gaps")
    return [name for _, name in items]


def _classes(props: dict[str, str], shape: GraphShape, source: str) -> list[str]:
    """Class names by class id for the graph's output channels."""
    names = _class_names(props, source)
    k = shape.out_channels or (len(names) if names else 0)
    if k == 0:
        raise ModelFileError(
            f"ONNX model {source!r} has a dynamic output channel count and no class_names; "
            "add class_names to its metadata")
    if names is None:
        names = ["background", "class 1"] if k == 1 else [f"class {i}" for i in range(k)]
    if k == 1 and len(names) == 1:
        return ["background", *names]  # a sigmoid output: Deepness adds the background too
    if len(names) != max(k, 2):
        raise ModelFileError(
            f"ONNX model {source!r} has {k} output channel(s) but {len(names)} class names "
            f"({names}); expected {max(k, 2)} names (1 or 2 for a single sigmoid output)")
    return names


def _band_statistics(props: dict[str, str], n: int,
                     source: str) -> tuple[list[float], list[float], str]:
    """``(band_mean, band_std, input_scaling)`` from the standardisation keys."""
    if not ("standardization_mean" in props and "standardization_std" in props):
        return [0.0] * n, [255.0] * n, "geodeep"
    stats = []
    for key in ("standardization_mean", "standardization_std"):
        raw = _value(props, key, source)
        vals = [float(v) for v in (raw if isinstance(raw, list) else [raw])]
        if len(vals) == 1:
            vals = vals * n
        if len(vals) != n:
            raise ModelFileError(
                f"ONNX model {source!r} has {len(vals)} values in {key} for {n} input "
                f"channels; expected {n} (or one for all)")
        stats.append([255.0 * v for v in vals])
    return stats[0], stats[1], "standardize"


def _tile_and_overlap(props: dict[str, str], shape: GraphShape, source: str) -> tuple[int, int]:
    """Tile size and overlap in pixels."""
    tile = shape.tile_px
    for key in ("tile_size", "tiles_size"):
        if not tile and key in props:
            tile = int(_value(props, key, source))
    tile = tile or DEFAULT_TILE_SIZE_PX
    if "tiles_overlap" in props:
        overlap = round(tile * float(_value(props, "tiles_overlap", source)) / 100)
    else:
        overlap = DEFAULT_OVERLAP_PX
    return tile, max(0, min(overlap, tile // 2))


def _background(classes: list[str]) -> int | None:
    """Class 0 is the background of binary models, or when its name says so."""
    if len(classes) == 2 or classes[0].lstrip("_").strip().lower() in BACKGROUND_NAMES:
        return 0
    return None


def foreign_metadata(props: dict[str, str], shape: GraphShape, source: str) -> ModelMetadata:
    """The :class:`ModelMetadata` of a graph with Deepness's metadata and no geounet key.

    Args:
        props: The graph's ``metadata_props`` (text values).
        shape: Its input and output shapes.
        source: The file name, for messages and the model name.

    Returns:
        The metadata (``architecture`` ``"onnx"``; see the module docstring).

    Raises:
        ModelFileError: for a graph without Deepness's ``model_type``, a model
            that is not a ``"Segmentor"``, several outputs, a dynamic channel
            count, or class names that do not fit the output.
    """
    if "model_type" not in props:
        raise ModelFileError(
            f"ONNX model {source!r} has no geounet metadata and no Deepness model_type; "
            "export it with geounet export, or add Deepness's metadata (model_type "
            "\"Segmentor\", class_names, ...; see docs/models.md)")
    model_type = _value(props, "model_type", source)
    if model_type != "Segmentor":
        raise ModelFileError(
            f"ONNX model {source!r} is a {model_type!r} model; geounet runs segmentation "
            "models only (Deepness model_type \"Segmentor\")")
    if shape.n_outputs != 1 or shape.out_rank not in (3, 4):
        raise ModelFileError(
            f"ONNX model {source!r} has {shape.n_outputs} output(s) of rank {shape.out_rank}; "
            "expected one (batch, classes, height, width) or (batch, height, width) output")
    if shape.in_channels <= 0:
        raise ModelFileError(
            f"ONNX model {source!r} has a dynamic input channel count; geounet needs a fixed "
            "one (input shape (batch, bands, height, width)) to pick bands 1..C")
    n = shape.in_channels
    classes = _classes(props, shape, source)
    mean, std, scaling = _band_statistics(props, n, source)
    tile, overlap = _tile_and_overlap(props, shape, source)
    resolution = float(_value(props, "resolution", source)) if "resolution" in props else 0
    extras = {k: _value(props, k, source) for k in ("seg_small_segment",) if k in props}
    meta = ModelMetadata(
        name=Path(source).stem, architecture="onnx", arch_args={},
        bands=list(range(1, n + 1)), band_names=[f"band {i}" for i in range(1, n + 1)],
        band_mean=mean, band_std=std, classes=classes, gsd_m=resolution / 100 or None,
        tile_size_px=tile, overlap_px=overlap,
        threshold=float(_value(props, "seg_thresh", source)) if "seg_thresh" in props
        else DEFAULT_THRESHOLD,
        training={"format": "deepness" if scaling == "standardize" else "geodeep", **extras},
        background_class=_background(classes), input_scaling=scaling)
    check_metadata(meta, source)
    return meta


def fit_output(out: np.ndarray, channels: int) -> np.ndarray:
    """Shape a foreign graph's output as geounet's predictors return it.

    Args:
        out: ``(b, k, h, w)`` or ``(b, h, w)`` float32 graph output.
        channels: Channels the model's metadata expects (1 for binary models).

    Returns:
        ``(b, channels, h, w)``: a ``(b, h, w)`` output gets its channel axis;
        a two-channel output of a binary model gives channel 1 (the
        foreground probability). Other outputs are returned as they are.
    """
    if out.ndim == 3:
        out = out[:, None]
    if channels == 1 and out.shape[1] == 2:
        out = out[:, 1:2]
    return out


class GeoDeepScaler:
    """GeoDeep's input scaling (``geodeep/detection.py``, ``preprocess``), per tile.

    uint8 scenes: ``x / 255``; other integer types: ``(x - 0)`` over the
    type's range (uint16: ``x / 65535``); floating-point scenes: each tile's
    own min-max over its valid pixels and bands. Values are clipped to [0, 1].

    Args:
        dtype: The scene's data type (e.g. ``"uint8"``).
    """

    def __init__(self, dtype: Any) -> None:
        self.dtype = np.dtype(dtype)

    def __call__(self, data: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Scale ``(bands, h, w)`` raw values; invalid pixels become 0.

        Args:
            data: ``(bands, h, w)`` float32 raw values.
            valid: ``(h, w)`` bool.

        Returns:
            ``(bands, h, w)`` float32 in [0, 1].
        """
        if self.dtype.kind == "f":
            sel = data[:, valid]
            low = float(sel.min()) if sel.size else 0.0
            span = (float(sel.max()) - low) if sel.size else 1.0
        else:
            info = np.iinfo(self.dtype)
            low, span = 0.0, float(info.max) - float(info.min)
        out = np.clip((data - low) / (span or 1.0), 0, 1).astype(np.float32)
        out[:, ~valid] = 0
        return out


def input_scaler(meta: ModelMetadata, dtype: Any) -> Any:
    """The scaler a run applies to raw tiles of a scene of ``dtype``.

    Args:
        meta: The model's metadata.
        dtype: The scene's data type.

    Returns:
        A callable ``(data (bands, h, w), valid (h, w)) -> (bands, h, w)``
        float32: :class:`GeoDeepScaler` for ``input_scaling="geodeep"``, else
        :class:`geounet.io.read.BandScaler` with the model's statistics.
    """
    if meta.input_scaling == "geodeep":
        return GeoDeepScaler(dtype)
    from geounet.io.read import BandScaler

    return BandScaler(meta.band_mean, meta.band_std)
