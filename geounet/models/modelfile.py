"""The geounet model file: safetensors weights plus JSON metadata; and loading models.

A model file is a plain ``.safetensors`` file (github.com/huggingface/safetensors):
the ``state_dict`` tensors, and in the header's ``__metadata__`` one key,
``"geounet"``, whose value is the JSON of :class:`ModelMetadata`. Loading
never unpickles code: the architecture is rebuilt from the registry by name
and the tensors are loaded into it.

An ``.onnx`` graph written by ``geounet export`` loads too; it has no torch
module and runs with onnxruntime. Both are entries of :data:`MODEL_FORMATS`
(file suffix -> metadata reader, loader and runtime).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from geounet.errors import InputNotFoundError, ModelFileError, UnknownModelError
from geounet.io.atomic import atomic_path
from geounet.models.metadata import (
    FORMAT_NAME,
    FORMAT_VERSION,
    METADATA_KEY,
    ModelMetadata,
    default_colors,
    import_optional,
    installed,
)
from geounet.models.onnx_metadata import companion_graph, read_onnx_metadata
from geounet.models.registry import DEFAULT_MODEL, architectures, build_model, bundled_models

__all__ = [  # ModelMetadata, default_colors and the FORMAT_* names re-exported from metadata
    "FORMAT_NAME", "FORMAT_VERSION", "METADATA_KEY", "MODEL_FORMATS", "LoadedModel",
    "ModelFormat", "ModelMetadata", "as_loaded", "default_colors", "format_of", "load_model",
    "model_spec", "read_metadata", "read_safetensors_metadata", "resolve_model_path",
    "save_model", "update_metadata",
]

log = logging.getLogger(__name__)


def resolve_model_path(spec: str | os.PathLike | None) -> Path:
    """Turn a ``--model`` value into a model file path.

    Args:
        spec: A path to a ``.safetensors`` (or ``.onnx``) file, the name of a
            bundled model, or ``None`` for the default bundled model.

    Returns:
        The model file path.

    Raises:
        InputNotFoundError: if it looks like a path (suffix or separator) but
            the file does not exist.
        UnknownModelError: if it is neither an existing file nor a bundled name.
    """
    bundled = bundled_models()
    if spec is None:
        spec = DEFAULT_MODEL
    path = Path(spec)
    if path.is_file():
        return path
    if str(spec) in bundled:
        return bundled[str(spec)]
    if path.suffix or os.sep in str(spec):
        raise InputNotFoundError(
            f"model file {str(spec)!r} does not exist; pass an existing .safetensors file or "
            f"a bundled model name ({', '.join(bundled) or 'none installed'})"
        )
    raise UnknownModelError(
        f"model {str(spec)!r} is neither a file nor a bundled model: expected one of "
        f"{', '.join(bundled) or '(none installed)'} or a path to a .safetensors file"
    )


def _existing(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"model file {str(path)!r} does not exist")
    return path


def read_safetensors_metadata(path: str | os.PathLike) -> ModelMetadata:
    """Read only the metadata of a ``.safetensors`` model file (no torch needed).

    Args:
        path: The model file.

    Returns:
        Its metadata.

    Raises:
        InputNotFoundError: if the file does not exist.
        ModelFileError: if the file is not a readable geounet safetensors file.
    """
    path = _existing(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise ValueError("file shorter than a safetensors header")
            n = int.from_bytes(head, "little")
            if n <= 0 or n > 100_000_000:
                raise ValueError(f"header length {n} is implausible")
            header = json.loads(fh.read(n))
        text = header.get("__metadata__", {}).get(METADATA_KEY)
    except (ValueError, UnicodeDecodeError, AttributeError) as exc:
        raise ModelFileError(
            f"model file {str(path)!r} is corrupt or not a safetensors file ({exc}); "
            "re-download or re-train it"
        ) from exc
    if text is None:
        raise ModelFileError(
            f"{str(path)!r} is a safetensors file without geounet metadata; only files "
            "written by geounet (geounet train) can be loaded"
        )
    return ModelMetadata.from_json(text, str(path))


def load_torch_module(path: Path, meta: ModelMetadata) -> Any:
    """Rebuild the architecture ``meta`` names and load the file's weights into it.

    Args:
        path: The ``.safetensors`` model file.
        meta: Its metadata (from :func:`read_safetensors_metadata`).

    Returns:
        The ``torch.nn.Module`` on CPU in eval mode.

    Raises:
        UnknownModelError: for an unregistered architecture.
        ModelFileError: if the file is corrupt or its weights do not fit the
            architecture.
    """
    if meta.architecture not in architectures():
        raise UnknownModelError(
            f"model file {str(path)!r} needs architecture {meta.architecture!r}, which is not "
            f"registered (have: {', '.join(sorted(architectures()))}); install its plugin package"
        )
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(
            f"model file {str(path)!r} is corrupt ({exc}); re-download or re-train it"
        ) from exc
    args = dict(meta.arch_args)
    args.pop("encoder_weights", None)  # weights come from the file, never downloaded
    args.pop("encoder_weights_path", None)
    module = build_model(meta.architecture, meta.in_channels, meta.out_channels, **args)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise ModelFileError(
            f"weights in {str(path)!r} do not fit architecture {meta.architecture!r} with "
            f"arguments {meta.arch_args} ({first}); the file is corrupt or for another model"
        ) from exc
    return module.eval()


def no_module(path: Path, meta: ModelMetadata) -> None:
    """Loader of formats run from the file by their runtime (ONNX): no torch module.

    Args:
        path: The model file (unused).
        meta: Its metadata (unused).

    Returns:
        ``None``.
    """
    return None


@dataclass(frozen=True)
class ModelFormat:
    """A model file format geounet loads.

    Attributes:
        name: Format name (``"safetensors"``, ``"onnx"``), stored in
            :attr:`LoadedModel.format`.
        runtime: Name of the runtime that runs it (a key of
            :data:`geounet.pipeline.predictors.RUNTIMES`).
        read_metadata: ``path -> ModelMetadata`` without loading weights.
        load: ``(path, metadata) -> module`` (``None`` when the runtime reads
            the file itself).
    """

    name: str
    runtime: str
    read_metadata: Callable[[Path], ModelMetadata]
    load: Callable[[Path, ModelMetadata], Any]


MODEL_FORMATS: dict[str, ModelFormat] = {
    ".safetensors": ModelFormat("safetensors", "torch", read_safetensors_metadata,
                                load_torch_module),
    ".onnx": ModelFormat("onnx", "onnxruntime", read_onnx_metadata, no_module),
}
"""Model formats by lower-case file suffix; other suffixes are read as safetensors."""


def format_of(path: str | os.PathLike) -> ModelFormat:
    """The format of a model file, by its suffix.

    Args:
        path: A model file path.

    Returns:
        Its :class:`ModelFormat` (safetensors for a suffix not in
        :data:`MODEL_FORMATS`).
    """
    return MODEL_FORMATS.get(Path(path).suffix.lower(), MODEL_FORMATS[".safetensors"])


def read_metadata(path: str | os.PathLike) -> ModelMetadata:
    """Read only the metadata of a model file (no torch needed).

    Args:
        path: A ``.safetensors`` model file or an exported ``.onnx`` graph.

    Returns:
        Its metadata.

    Raises:
        InputNotFoundError: if the file does not exist.
        ModelFileError: if the file is not a readable geounet model file.
        MissingDependencyError: for an ``.onnx`` file without ``onnx`` installed.
    """
    path = _existing(path)
    return format_of(path).read_metadata(path)


def save_model(model: Any, metadata: ModelMetadata, path: str | os.PathLike) -> Path:
    """Write a model file atomically (temporary file, then rename).

    Args:
        model: The ``torch.nn.Module`` whose ``state_dict`` is saved.
        metadata: Its :class:`ModelMetadata`.
        path: Destination ``.safetensors`` path.

    Returns:
        The path written.
    """
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path, overwrite=True) as tmp:
        save_file(tensors, str(tmp), metadata={METADATA_KEY: metadata.to_json()})
    return path


@dataclass
class LoadedModel:
    """A model ready for inference.

    Attributes:
        module: The ``torch.nn.Module`` in eval mode, on CPU until moved;
            ``None`` for an exported ``.onnx`` model (run by onnxruntime).
        metadata: Its :class:`ModelMetadata`.
        path: The file it came from.
        format: Name of its :class:`ModelFormat` (``"safetensors"``, ``"onnx"``).
    """

    module: Any
    metadata: ModelMetadata
    path: Path
    format: str = "safetensors"

    @property
    def runtime(self) -> str:
        """Name of the runtime that runs it (``"torch"``, ``"onnxruntime"``)."""
        return next(f.runtime for f in MODEL_FORMATS.values() if f.name == self.format)


def load_model(spec: str | os.PathLike | None = None) -> LoadedModel:
    """Load a model file or a bundled model.

    Args:
        spec: Path (``.safetensors``, or ``.onnx`` exported by ``geounet
            export``), bundled model name, or ``None`` for the default model
            (``buildings-atlanta``).

    Returns:
        A :class:`LoadedModel` on CPU in eval mode.

    Raises:
        InputNotFoundError: if a given path does not exist.
        UnknownModelError: for an unknown name or an unregistered architecture.
        ModelFileError: if the file is corrupt or its weights do not fit the
            architecture it names.
        MissingDependencyError: for an ``.onnx`` file without onnx or
            onnxruntime installed, or a ``.safetensors`` file without torch
            and without an ONNX companion
            (:func:`~geounet.models.onnx_metadata.companion_graph`).
    """
    path = resolve_model_path(spec)
    fmt = format_of(path)
    if fmt.runtime == "torch" and not installed("torch"):
        graph = companion_graph(path)
        if graph is None:
            import_optional("torch", extra="torch")  # names the extra to install
        log.info("torch is not installed: %s runs as its ONNX graph %s", path, graph)
        path, fmt = Path(str(graph)), MODEL_FORMATS[".onnx"]
    meta = fmt.read_metadata(path)
    module = fmt.load(path, meta)
    log.info("loaded model %s (%s, %s) from %s", meta.name, meta.architecture, fmt.name, path)
    return LoadedModel(module, meta, path, fmt.name)


def as_loaded(model: LoadedModel | str | os.PathLike | None) -> LoadedModel:
    """The :class:`LoadedModel` for any model argument of the API.

    Args:
        model: A :class:`LoadedModel` (returned as is), a model file path, a
            bundled model name, or ``None`` for the default model.

    Returns:
        The loaded model.

    Raises:
        InputNotFoundError, UnknownModelError, ModelFileError: as :func:`load_model`.
    """
    if isinstance(model, LoadedModel):
        return model
    return load_model(model)


def model_spec(model: LoadedModel | str | os.PathLike | None) -> str:
    """A model reference other processes (Dask workers) can load with :func:`load_model`.

    Args:
        model: A :class:`LoadedModel`, a model file path, a bundled model name
            or ``None`` for the default model.

    Returns:
        The model file path, as a string.

    Raises:
        InputNotFoundError, UnknownModelError: as :func:`resolve_model_path`.
    """
    if isinstance(model, LoadedModel):
        return str(model.path)
    return str(resolve_model_path(model))


def update_metadata(path: str | os.PathLike, output: str | os.PathLike | None = None,
                    **changes: Any) -> Path:
    """Rewrite a model file with some metadata fields replaced (weights unchanged).

    Used to stamp held-out ``evaluation`` figures into a trained model.

    Args:
        path: Existing ``.safetensors`` model file.
        output: Where to write (default: replace ``path`` atomically).
        **changes: :class:`ModelMetadata` fields and their new values.

    Returns:
        The path written.

    Raises:
        InputNotFoundError: if the file does not exist.
        ModelFileError: for an unknown field or an unreadable file.
    """
    from safetensors.torch import load_file, save_file

    known = {f.name for f in fields(ModelMetadata)}
    unknown = set(changes) - known
    if unknown:
        raise ModelFileError(f"unknown metadata field(s) {sorted(unknown)}; known: {sorted(known)}")
    meta = replace(read_safetensors_metadata(path), **changes)
    tensors = load_file(str(path))
    out = Path(output or path)
    with atomic_path(out, overwrite=True) as tmp:
        save_file(tensors, str(tmp), metadata={METADATA_KEY: meta.to_json()})
    return out
