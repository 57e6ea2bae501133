"""ONNX graph metadata: what geounet, Deepness, GeoDeep and other tools read from a graph.

``metadata_props`` holds, each value JSON-encoded, the keys Deepness reads
(https://qgis-plugin-deepness.readthedocs.io, "Model metadata") and GeoDeep
reads the same way: ``model_type`` (``"Segmentor"``), ``class_names``,
``resolution`` (cm per pixel), ``tiles_size`` and ``tile_size`` (its docs name
the first, its code reads the second), ``tiles_overlap`` (an integer percent:
Deepness truncates it with ``int``), ``standardization_mean``,
``standardization_std``, ``seg_thresh`` and ``seg_small_segment`` (0: Deepness's
median blur and GeoDeep's sieve off; Deepness blurs 9 x 9 without it);
``geounet``, the full :class:`~geounet.models.metadata.ModelMetadata`; and, for
graphs exported from a ``.safetensors`` file, ``geounet_source_sha256``
(:data:`SOURCE_KEY`). A graph without the ``geounet`` key is read from the
Deepness keys (:mod:`geounet.models.foreign_onnx`).

Deepness divides pixel values by 255 before standardising, so the mean and
standard deviation it gets are geounet's per-band statistics divided by 255:
``((x / 255) - mean / 255) / (std / 255) == (x - mean) / std``.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from importlib import import_module
from pathlib import Path
from typing import Any

from geounet.errors import MissingDependencyError, ModelFileError
from geounet.io.checksum import file_sha256
from geounet.models.foreign_onnx import GraphShape, foreign_metadata
from geounet.models.metadata import METADATA_KEY, ModelMetadata, import_optional

SOURCE_KEY = "geounet_source_sha256"
"""``metadata_props`` key: SHA-256 of the ``.safetensors`` file the graph was exported from."""


def deepness_metadata(meta: ModelMetadata, tile_size_px: int, seg_small_segment: int = 0,
                      seg_thresh: float | None = None) -> dict[str, str]:
    """``metadata_props`` of an exported graph, each value JSON-encoded.

    Args:
        meta: The model's metadata (its ``tile_size_px`` and ``overlap_px``
            already those of the graph).
        tile_size_px: Fixed tile size of the graph in pixels.
        seg_small_segment: Deepness's and GeoDeep's small-segment filter size
            (px; 0 turns both off).
        seg_thresh: Threshold the clients apply (default: ``meta.threshold``).

    Returns:
        The Deepness keys (see the module docstring) and :data:`METADATA_KEY`
        with the full :meth:`ModelMetadata.to_json`.
    """
    classes = {i: n for i, n in enumerate(meta.classes)}
    props = {
        "model_type": "Segmentor",
        "class_names": classes,
        "resolution": round((meta.gsd_m or 0) * 100, 4),
        "tiles_size": tile_size_px,
        "tile_size": tile_size_px,
        "tiles_overlap": round(100 * meta.overlap_px / tile_size_px),
        "standardization_mean": [m / 255 for m in meta.band_mean],
        "standardization_std": [s / 255 for s in meta.band_std],
        "seg_thresh": meta.threshold if seg_thresh is None else seg_thresh,
        "seg_small_segment": int(seg_small_segment),
    }
    out = {k: json.dumps(v) for k, v in props.items()}
    out[METADATA_KEY] = meta.to_json()
    return out


def write_onnx_metadata(path: str | os.PathLike, meta: ModelMetadata, tile_size_px: int,
                        source_sha256: str | None = None, **client_keys: Any) -> None:
    """Replace the ``metadata_props`` of an ONNX file with :func:`deepness_metadata`.

    Args:
        path: The ``.onnx`` file, rewritten in place.
        meta: The model's metadata for the graph.
        tile_size_px: Fixed tile size of the graph in pixels.
        source_sha256: SHA-256 of the ``.safetensors`` file it was exported
            from (:data:`SOURCE_KEY`), so a graph beside its source can stand in
            for it where torch is not installed.
        **client_keys: ``seg_small_segment`` and ``seg_thresh`` of
            :func:`deepness_metadata`.

    Raises:
        MissingDependencyError: if ``onnx`` is not installed.
    """
    onnx = import_optional("onnx")
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    props = deepness_metadata(meta, tile_size_px, **client_keys)
    if source_sha256:
        props[SOURCE_KEY] = json.dumps(source_sha256)
    for k, v in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(proto, str(path))


def onnx_props(path: str | os.PathLike) -> tuple[dict[str, str], int]:
    """The ``metadata_props`` and the input tile size of an ONNX graph.

    Read with ``onnx`` when it is installed (no session is built), else with
    onnxruntime (the torch-free install has no ``onnx``). Results are kept per
    file path, size and modification time, so a run that asks several times
    (companion check, metadata, tile size) reads the graph once.

    Args:
        path: The ``.onnx`` file.

    Returns:
        ``(props, tile_px)``: the metadata as text values, and the graph's
        fixed input height in pixels (0 when dynamic).

    Raises:
        ModelFileError: if the file is not a readable ONNX model.
        MissingDependencyError: if neither onnx nor onnxruntime is installed.
    """
    props, shape = _cached(path)
    return dict(props), shape.tile_px


def onnx_graph_shape(path: str | os.PathLike) -> GraphShape:
    """Input and output shapes of an ONNX graph (read as :func:`onnx_props` reads).

    Args:
        path: The ``.onnx`` file.

    Returns:
        Its :class:`~geounet.models.foreign_onnx.GraphShape`.

    Raises:
        ModelFileError: if the file is not a readable ONNX model.
        MissingDependencyError: if neither onnx nor onnxruntime is installed.
    """
    return _cached(path)[1]


def _cached(path: str | os.PathLike) -> tuple[dict[str, str], GraphShape]:
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ModelFileError(f"{str(path)!r} is not a readable ONNX model ({exc})") from exc
    return _read_props(os.path.abspath(path), st.st_size, st.st_mtime_ns)


def _dims(dims: list[Any]) -> list[int]:
    """Shape entries as ints, 0 for dynamic ones (names, ``None``, ``-1``)."""
    return [d if isinstance(d, int) and d > 0 else 0 for d in dims]


def _shape(inputs: list[list[int]], outputs: list[list[int]]) -> GraphShape:
    first_in = (inputs[0] + [0, 0, 0, 0])[:4] if inputs else [0, 0, 0, 0]
    out = outputs[0] if outputs else []
    out_channels = out[1] if len(out) == 4 else (1 if len(out) == 3 else 0)
    return GraphShape(in_channels=first_in[1], tile_px=first_in[2], out_channels=out_channels,
                      out_rank=len(out), n_outputs=len(outputs))


@lru_cache(maxsize=32)
def _read_props(path: str, size: int, mtime_ns: int) -> tuple[dict[str, str], GraphShape]:
    try:
        onnx = import_module("onnx")
    except ImportError:
        onnx = None
    try:
        if onnx is not None:
            proto = onnx.load(str(path), load_external_data=False)

            def dims(values: Any) -> list[list[int]]:
                return [_dims([d.dim_value for d in v.type.tensor_type.shape.dim])
                        for v in values]

            inits = {i.name for i in proto.graph.initializer}
            inputs = [i for i in proto.graph.input if i.name not in inits]
            return ({p.key: p.value for p in proto.metadata_props},
                    _shape(dims(inputs), dims(proto.graph.output)))
        ort = import_optional("onnxruntime")
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return (dict(session.get_modelmeta().custom_metadata_map),
                _shape([_dims(list(i.shape)) for i in session.get_inputs()],
                       [_dims(list(o.shape)) for o in session.get_outputs()]))
    except MissingDependencyError:
        raise
    except Exception as exc:
        raise ModelFileError(f"{str(path)!r} is not a readable ONNX model ({exc})") from exc


def read_onnx_metadata(path: str | os.PathLike) -> ModelMetadata:
    """The :class:`ModelMetadata` stored in an ``.onnx`` file, or made from Deepness's keys.

    Args:
        path: The ``.onnx`` file: exported by geounet (its ``geounet`` key),
            or a segmentation model with Deepness's metadata
            (:func:`~geounet.models.foreign_onnx.foreign_metadata`).

    Returns:
        Its metadata.

    Raises:
        MissingDependencyError: if neither onnx nor onnxruntime is installed.
        ModelFileError: if the file is neither a geounet export nor a Deepness
            segmentation model.
    """
    props, shape = _cached(path)
    if METADATA_KEY not in props:
        return foreign_metadata(props, shape, str(path))
    return ModelMetadata.from_json(props[METADATA_KEY], str(path))


def onnx_tile_size(path: str | os.PathLike) -> int:
    """The fixed tile size (input height) of an exported graph.

    Args:
        path: The ``.onnx`` file.

    Returns:
        The tile size in pixels.

    Raises:
        MissingDependencyError: if neither onnx nor onnxruntime is installed.
        ModelFileError: if the file is not a readable ONNX model.
    """
    return onnx_props(path)[1]


def onnx_source_sha256(path: str | os.PathLike) -> str | None:
    """SHA-256 of the ``.safetensors`` file a graph was exported from, if recorded.

    Args:
        path: The ``.onnx`` file.

    Returns:
        The digest, or ``None`` (graphs exported before 0.2 record none).

    Raises:
        ModelFileError: if the file is not a readable ONNX model.
    """
    raw = onnx_props(path)[0].get(SOURCE_KEY)
    try:
        return str(json.loads(raw)) if raw is not None else None
    except json.JSONDecodeError:
        return None


def companion_graph(path: str | os.PathLike) -> Path | None:
    """The ONNX graph exported from a ``.safetensors`` file and kept beside it, if any.

    ``model.onnx`` next to ``model.safetensors`` is its companion when the graph
    records that file's SHA-256 (:data:`SOURCE_KEY`); the bundled models ship
    one each, so they run where torch is not installed.

    Args:
        path: A ``.safetensors`` model file.

    Returns:
        The ``.onnx`` path, or ``None`` when there is no matching graph.
    """
    graph = Path(path).with_suffix(".onnx")
    if not graph.is_file():
        return None
    try:
        source = onnx_source_sha256(graph)
    except (ModelFileError, MissingDependencyError):
        return None
    return graph if source == file_sha256(path) else None
