"""ONNX export of geounet models, readable by geounet itself and by the Deepness QGIS plugin.

The exported graph takes ``(batch, bands, tile, tile)`` float32 input that is already
standardised and ends in the probabilities (sigmoid for binary models, softmax
otherwise); the batch dimension is dynamic, the tile size fixed. Its
``metadata_props`` are described in :mod:`geounet.models.metadata`; exported
graphs run through :class:`geounet.pipeline.predictors.OnnxPredictor`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from geounet._deprecated import moved_to
from geounet.errors import ModelFileError
from geounet.io.atomic import atomic_path
from geounet.io.checksum import file_sha256
from geounet.models.metadata import import_optional
from geounet.models.modelfile import LoadedModel, as_loaded
from geounet.models.onnx_metadata import write_onnx_metadata
from geounet.pipeline.tiling import padded_size

__all__ = ["export_onnx"]

log = logging.getLogger(__name__)

__getattr__ = moved_to(__name__, {
    "read_onnx_metadata": "geounet.models.onnx_metadata",
    "onnx_tile_size": "geounet.models.onnx_metadata",
    "deepness_metadata": "geounet.models.onnx_metadata",
    "ONNX_METADATA_KEY": "geounet.models.metadata:METADATA_KEY",
    "OnnxPredictor": "geounet.pipeline.predictors",
})


def _with_activation(module: Any, binary: bool) -> Any:
    """``module`` followed by a sigmoid (``binary``) or a softmax over channels."""
    import torch

    class WithActivation(torch.nn.Module):
        def __init__(self, net: Any, binary: bool) -> None:
            super().__init__()
            self.net = net
            self.binary = binary

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.net(x)
            return torch.sigmoid(y) if self.binary else torch.softmax(y, dim=1)

    return WithActivation(module.eval().cpu(), binary).eval()


def export_onnx(model: LoadedModel | str | os.PathLike | None = None,
                output: str | os.PathLike = "model.onnx", tile_size_px: int | None = None,
                overwrite: bool = False, opset: int = 17) -> Path:
    """Export a model to ONNX with probabilities as output.

    Args:
        model: Model file path, bundled name, ``LoadedModel`` or ``None`` (default model).
        output: ``.onnx`` file to write (atomically).
        tile_size_px: Fixed tile size of the graph in pixels (default: the model's
            recommended tile size); rounded up to the model's ``pad_multiple``.
        overwrite: Replace an existing file.
        opset: ONNX opset version.

    Returns:
        The path written.

    Raises:
        MissingDependencyError: if ``onnx`` is not installed.
        ModelFileError: if ``model`` is already an ONNX model.
        OutputExistsError, OutputNotWritableError: the usual output errors.
    """
    torch: Any = import_optional("torch", extra="torch")
    import_optional("onnx", extra="torch")
    loaded = as_loaded(model)
    if loaded.format == "onnx":
        raise ModelFileError(f"{str(loaded.path)!r} is already an ONNX model")
    tile = padded_size(tile_size_px or loaded.metadata.tile_size_px, loaded.metadata.pad_multiple)
    meta = replace(loaded.metadata, tile_size_px=tile,
                   overlap_px=min(loaded.metadata.overlap_px, tile // 2))
    wrapped = _with_activation(loaded.module, meta.binary)
    x = torch.zeros(1, meta.in_channels, tile, tile)
    with atomic_path(output, overwrite=overwrite) as tmp:
        torch.onnx.export(
            wrapped, (x,), str(tmp), input_names=["input"], output_names=["probabilities"],
            dynamic_axes={"input": {0: "batch"}, "probabilities": {0: "batch"}},
            opset_version=opset, dynamo=False,
        )
        write_onnx_metadata(tmp, meta, tile, file_sha256(loaded.path))
    log.info("exported %s to %s (tile %d px)", meta.name, output, tile)
    return Path(output)
