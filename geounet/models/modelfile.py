"""The geounet model file: safetensors weights plus JSON metadata; and loading models.

A model file is a plain ``.safetensors`` file (github.com/huggingface/safetensors):
the ``state_dict`` tensors, and in the header's ``__metadata__`` one key,
``"geounet"``, whose value is the JSON of :class:`ModelMetadata`. Loading
never unpickles code: the architecture is rebuilt from the registry by name
and the tensors are loaded into it.

An ``.onnx`` graph written by ``geounet export`` loads too; it has no torch
module and runs with onnxruntime. Torch models of other tools load when they
carry enough metadata (:mod:`geounet.models.foreign_meta`): an smp
``save_pretrained`` folder, a torchgeo ``.ckpt``, a ``.pth``/``.pt`` state dict.
All are entries of :data:`MODEL_FORMATS` (file suffix -> metadata reader, loader
and runtime).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from functools import partial
from pathlib import Path
from typing import Any

from geounet.errors import InputNotFoundError, ModelFileError, UnknownModelError
from geounet.io.atomic import atomic_path
from geounet.models.foreign_meta import load_foreign_module, read_foreign_metadata
from geounet.models.foreign_torch import is_foreign_folder
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
from geounet.models.registry import DEFAULT_MODEL, bundled_models
from geounet.models.safetensors_file import (
    existing_model_file,
    load_torch_module,
    read_safetensors_metadata,
    save_model,
)

__all__ = [  # ModelMetadata, default_colors and the FORMAT_* names re-exported from metadata
    "FOLDER", "FORMAT_NAME", "FORMAT_VERSION", "METADATA_KEY", "MODEL_FORMATS", "LoadedModel",
    "ModelFormat", "ModelMetadata", "as_loaded", "default_colors", "format_of", "load_model",
    "model_spec", "read_metadata", "read_safetensors_metadata", "resolve_model_path",
    "save_model", "update_metadata",
]

log = logging.getLogger(__name__)


def resolve_model_path(spec: str | os.PathLike | None) -> Path:
    """Turn a ``--model`` value into a model file path.

    Args:
        spec: A path to a model file of :data:`MODEL_FORMATS` (``.safetensors``,
            ``.onnx``, ``.ckpt``, ``.pth``, ``.pt``), an smp ``save_pretrained``
            folder, the name of a bundled model, or ``None`` for the default
            bundled model.

    Returns:
        The model file (or folder) path.

    Raises:
        InputNotFoundError: if it looks like a path (suffix or separator) but
            the file does not exist.
        UnknownModelError: if it is neither an existing file nor a bundled name.
    """
    bundled = bundled_models()
    if spec is None:
        spec = DEFAULT_MODEL
    path = Path(spec)
    if path.is_file() or is_foreign_folder(path):
        return path
    if str(spec) in bundled:
        return bundled[str(spec)]
    if path.suffix or os.sep in str(spec):
        raise InputNotFoundError(
            f"model file {str(spec)!r} does not exist; pass an existing model file "
            f"({', '.join(MODEL_FORMATS)}), an smp save_pretrained folder or a bundled model "
            f"name ({', '.join(bundled) or 'none installed'})"
        )
    raise UnknownModelError(
        f"model {str(spec)!r} is neither a file nor a bundled model: expected one of "
        f"{', '.join(bundled) or '(none installed)'} or a path to a .safetensors file"
    )


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


FOLDER = "/"
"""Key of :data:`MODEL_FORMATS` for a folder (an smp ``save_pretrained`` folder)."""

MODEL_FORMATS: dict[str, ModelFormat] = {
    ".safetensors": ModelFormat("safetensors", "torch", read_safetensors_metadata,
                                load_torch_module),
    ".onnx": ModelFormat("onnx", "onnxruntime", read_onnx_metadata, no_module),
    ".ckpt": ModelFormat("torch-checkpoint", "torch", read_foreign_metadata, load_foreign_module),
    ".pth": ModelFormat("torch-checkpoint", "torch", read_foreign_metadata, load_foreign_module),
    ".pt": ModelFormat("torch-checkpoint", "torch", read_foreign_metadata, load_foreign_module),
    FOLDER: ModelFormat("smp-folder", "torch", read_foreign_metadata, load_foreign_module),
}
"""Model formats by lower-case file suffix (:data:`FOLDER` for an smp ``save_pretrained``
folder); other suffixes are read as safetensors."""


def format_of(path: str | os.PathLike) -> ModelFormat:
    """The format of a model file, by its suffix.

    Args:
        path: A model file path.

    Returns:
        Its :class:`ModelFormat` (:data:`FOLDER`'s for a folder, safetensors for
        a suffix not in :data:`MODEL_FORMATS`).
    """
    if Path(path).is_dir():
        return MODEL_FORMATS[FOLDER]
    return MODEL_FORMATS.get(Path(path).suffix.lower(), MODEL_FORMATS[".safetensors"])


def read_metadata(path: str | os.PathLike) -> ModelMetadata:
    """Read only the metadata of a model file (no torch needed).

    Args:
        path: A model file or folder of :data:`MODEL_FORMATS`.

    Returns:
        Its metadata.

    Raises:
        InputNotFoundError: if the file does not exist.
        ModelFileError: if the file is not a readable model file, or a foreign
            model lacks metadata (the message lists it and the ``geounet
            import`` command that adds it).
        MissingDependencyError: for an ``.onnx`` file without ``onnx`` installed.
    """
    path = Path(path) if is_foreign_folder(Path(path)) else existing_model_file(path)
    return format_of(path).read_metadata(path)


class LoadedModel:
    """A model ready for inference.

    Args:
        module: The ``torch.nn.Module`` in eval mode, on CPU until moved;
            ``None`` for an exported ``.onnx`` model (run by onnxruntime) or
            when ``loader`` builds it.
        metadata: Its :class:`ModelMetadata`.
        path: The file it came from.
        format: Name of its :class:`ModelFormat` (``"safetensors"``, ``"onnx"``,
            ``"torch-checkpoint"``, ``"smp-folder"``).
        loader: ``() -> module``, called the first time :attr:`module` is read
            (``load_model(lazy=True)``: a run on an ONNX runtime never imports torch).

    Attributes:
        metadata: As given.
        path: As given.
        format: As given.
    """

    def __init__(self, module: Any, metadata: ModelMetadata, path: Path,
                 format: str = "safetensors",
                 loader: Callable[[], Any] | None = None) -> None:
        self._module = module
        self._loader = loader
        self.metadata = metadata
        self.path = path
        self.format = format

    @property
    def module(self) -> Any:
        """The torch module (built on first use when loaded lazily), or ``None``.

        Raises:
            UnknownModelError, ModelFileError: as :func:`load_torch_module`,
                the first time a lazily loaded module is built.
        """
        if self._loader is not None:
            self._module, self._loader = self._loader(), None
        return self._module

    @module.setter
    def module(self, value: Any) -> None:
        self._module, self._loader = value, None

    def __repr__(self) -> str:
        return (f"LoadedModel({self.metadata.name!r}, path={str(self.path)!r}, "
                f"format={self.format!r})")

    @property
    def runtime(self) -> str:
        """Name of the runtime that runs it (``"torch"``, ``"onnxruntime"``)."""
        return next(f.runtime for f in MODEL_FORMATS.values() if f.name == self.format)


def load_model(spec: str | os.PathLike | None = None, lazy: bool = False) -> LoadedModel:
    """Load a model file or a bundled model.

    Args:
        spec: Path (``.safetensors``, ``.onnx`` exported by ``geounet export``
            or another tool, a foreign torch model of :data:`MODEL_FORMATS`),
            bundled model name, or ``None`` for the default model
            (``buildings-atlanta``).
        lazy: Read the metadata now and build the torch module the first time
            :attr:`LoadedModel.module` is read (errors of the weights then
            surface there).

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
    log.info("loaded model %s (%s, %s) from %s", meta.name, meta.architecture, fmt.name, path)
    if lazy:
        return LoadedModel(None, meta, path, fmt.name, loader=partial(fmt.load, path, meta))
    return LoadedModel(fmt.load(path, meta), meta, path, fmt.name)


def as_loaded(model: LoadedModel | str | os.PathLike | None, lazy: bool = False) -> LoadedModel:
    """The :class:`LoadedModel` for any model argument of the API.

    Args:
        model: A :class:`LoadedModel` (returned as is), a model file path, a
            bundled model name, or ``None`` for the default model.
        lazy: As for :func:`load_model`.

    Returns:
        The loaded model.

    Raises:
        InputNotFoundError, UnknownModelError, ModelFileError: as :func:`load_model`.
    """
    if isinstance(model, LoadedModel):
        return model
    return load_model(model, lazy=lazy)


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
    known = {f.name for f in fields(ModelMetadata)}
    unknown = set(changes) - known
    if unknown:
        raise ModelFileError(f"unknown metadata field(s) {sorted(unknown)}; known: {sorted(known)}")
    meta = replace(read_safetensors_metadata(path), **changes)
    out = Path(output or path)
    with atomic_path(out, overwrite=True) as tmp:
        _copy_with_metadata(Path(path), "safetensors", tmp, meta)
    return out


def _copy_with_metadata(src: Path, fmt: str, dst: Path, meta: ModelMetadata) -> None:
    """Write ``src``'s weights (``.safetensors``) or graph (``.onnx``) to ``dst`` with ``meta``."""
    if fmt == "onnx":
        import shutil

        from geounet.models.onnx_metadata import onnx_source_sha256, write_onnx_metadata

        shutil.copyfile(src, dst)
        write_onnx_metadata(dst, meta, meta.tile_size_px, onnx_source_sha256(src))
    else:
        from safetensors.numpy import load_file, save_file

        save_file(load_file(str(src)), str(dst), metadata={METADATA_KEY: meta.to_json()})


def save_metadata(loaded: LoadedModel, output: str | os.PathLike, meta: ModelMetadata,
                  overwrite: bool = False) -> Path:
    """Write a copy of a model file with new metadata (weights or graph unchanged).

    Args:
        loaded: The model (a ``.safetensors`` or ``.onnx`` file).
        output: The file to write, with the same suffix (atomically).
        meta: The new metadata.
        overwrite: Replace an existing output.

    Returns:
        The path written.

    Raises:
        ModelFileError: for an output whose suffix differs from the model's.
        OutputExistsError: if ``output`` exists and ``overwrite`` is false.
    """
    src, out = Path(loaded.path), Path(output)
    if out.suffix.lower() != src.suffix.lower():
        raise ModelFileError(f"output {str(out)!r}: a copy of {src.name!r} must have the "
                             f"suffix {src.suffix!r}; pass e.g. -o {out.with_suffix(src.suffix)}")
    with atomic_path(out, overwrite=overwrite) as tmp:
        _copy_with_metadata(src, loaded.format, tmp, meta)
    return out
