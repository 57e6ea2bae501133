"""ONNX graph metadata: what geounet, Deepness and other tools read from an exported graph.

``metadata_props`` holds, each value JSON-encoded, the keys Deepness reads
(https://qgis-plugin-deepness.readthedocs.io, "Model metadata"):
``model_type`` (``"Segmentor"``), ``class_names``, ``resolution`` (cm per
pixel), ``tiles_size``, ``tiles_overlap`` (percent), ``standardization_mean``,
``standardization_std`` and ``seg_thresh``; ``geounet``, the full
:class:`~geounet.models.metadata.ModelMetadata`; and, for graphs exported from a
``.safetensors`` file, ``geounet_source_sha256`` (:data:`SOURCE_KEY`).

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

from geounet.errors import MissingDependencyError, ModelFileError
from geounet.io.checksum import file_sha256
from geounet.models.metadata import METADATA_KEY, ModelMetadata, import_optional

SOURCE_KEY = "geounet_source_sha256"
"""``metadata_props`` key: SHA-256 of the ``.safetensors`` file the graph was exported from."""


def deepness_metadata(meta: ModelMetadata, tile_size_px: int) -> dict[str, str]:
    """``metadata_props`` of an exported graph, each value JSON-encoded.

    Args:
        meta: The model's metadata (its ``tile_size_px`` and ``overlap_px``
            already those of the graph).
        tile_size_px: Fixed tile size of the graph in pixels.

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
        "tiles_overlap": round(100 * meta.overlap_px / tile_size_px, 2),
        "standardization_mean": [m / 255 for m in meta.band_mean],
        "standardization_std": [s / 255 for s in meta.band_std],
        "seg_thresh": meta.threshold,
    }
    out = {k: json.dumps(v) for k, v in props.items()}
    out[METADATA_KEY] = meta.to_json()
    return out


def write_onnx_metadata(path: str | os.PathLike, meta: ModelMetadata, tile_size_px: int,
                        source_sha256: str | None = None) -> None:
    """Replace the ``metadata_props`` of an ONNX file with :func:`deepness_metadata`.

    Args:
        path: The ``.onnx`` file, rewritten in place.
        meta: The model's metadata for the graph.
        tile_size_px: Fixed tile size of the graph in pixels.
        source_sha256: SHA-256 of the ``.safetensors`` file it was exported
            from (:data:`SOURCE_KEY`), so a graph beside its source can stand in
            for it where torch is not installed.

    Raises:
        MissingDependencyError: if ``onnx`` is not installed.
    """
    onnx = import_optional("onnx")
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    props = deepness_metadata(meta, tile_size_px)
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
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ModelFileError(f"{str(path)!r} is not a readable ONNX model ({exc})") from exc
    props, tile = _read_props(os.path.abspath(path), st.st_size, st.st_mtime_ns)
    return dict(props), tile


@lru_cache(maxsize=32)
def _read_props(path: str, size: int, mtime_ns: int) -> tuple[dict[str, str], int]:
    try:
        onnx = import_module("onnx")
    except ImportError:
        onnx = None
    try:
        if onnx is not None:
            proto = onnx.load(str(path), load_external_data=False)
            dim = proto.graph.input[0].type.tensor_type.shape.dim[2]
            return {p.key: p.value for p in proto.metadata_props}, int(dim.dim_value)
        ort = import_optional("onnxruntime")
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        height = session.get_inputs()[0].shape[2]
        return (dict(session.get_modelmeta().custom_metadata_map),
                height if isinstance(height, int) else 0)
    except MissingDependencyError:
        raise
    except Exception as exc:
        raise ModelFileError(f"{str(path)!r} is not a readable ONNX model ({exc})") from exc


def read_onnx_metadata(path: str | os.PathLike) -> ModelMetadata:
    """The :class:`ModelMetadata` stored in an exported ``.onnx`` file.

    Args:
        path: The ``.onnx`` file.

    Returns:
        Its metadata.

    Raises:
        MissingDependencyError: if neither onnx nor onnxruntime is installed.
        ModelFileError: if the file is not an ONNX model exported by geounet.
    """
    props, _ = onnx_props(path)
    if METADATA_KEY not in props:
        raise ModelFileError(
            f"ONNX model {str(path)!r} has no geounet metadata; export it with geounet export"
        )
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
