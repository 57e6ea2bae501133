"""The safetensors model file: reading its metadata, loading and saving its weights.

A geounet model file is a plain ``.safetensors`` file
(github.com/huggingface/safetensors): the ``state_dict`` tensors, and in the
header's ``__metadata__`` one key, ``"geounet"``, whose value is the JSON of
:class:`~geounet.models.metadata.ModelMetadata`. Loading never unpickles code:
the architecture is rebuilt from the registry by name and the tensors are
loaded into it. safetensors' torch half (and so torch) is imported only to load
or save weights; the metadata is read from the header with the standard library.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from geounet.errors import InputNotFoundError, ModelFileError, UnknownModelError
from geounet.io.atomic import atomic_path
from geounet.models.metadata import METADATA_KEY, ModelMetadata
from geounet.models.registry import architectures, build_model


def existing_model_file(path: str | os.PathLike) -> Path:
    """``path`` as a Path, checked to be a file.

    Raises:
        InputNotFoundError: if it is not.
    """
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
    path = existing_model_file(path)
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


def save_model(model: Any, metadata: ModelMetadata, path: str | os.PathLike) -> Path:
    """Write a model file atomically (temporary file, then rename).

    Args:
        model: The ``torch.nn.Module`` whose ``state_dict`` is saved.
        metadata: Its :class:`ModelMetadata`.
        path: Destination ``.safetensors`` path.

    Returns:
        The path written.

    An ``align_corners`` the module has but ``metadata.arch_args`` leaves out
    is recorded, so the file keeps its behaviour if the default changes (files
    without it load as geounet 0.1 wrote them, with ``True``).
    """
    from dataclasses import replace

    from safetensors.torch import save_file

    path = Path(path)
    align = getattr(model, "align_corners", None)
    if align is not None and "align_corners" not in metadata.arch_args:
        metadata = replace(metadata, arch_args={**metadata.arch_args,
                                                "align_corners": bool(align)})
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path, overwrite=True) as tmp:
        save_file(tensors, str(tmp), metadata={METADATA_KEY: metadata.to_json()})
    return path
