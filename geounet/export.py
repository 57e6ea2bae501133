"""ONNX export of geounet models, readable by geounet itself, Deepness and GeoDeep.

The exported graph takes ``(batch, bands, tile, tile)`` float32 input that is already
standardised and ends in the probabilities (sigmoid for binary models, softmax
otherwise); the batch dimension is dynamic, the tile size fixed. Its
``metadata_props`` are described in :mod:`geounet.models.onnx_metadata`; exported
graphs run through :class:`geounet.pipeline.predictors.OnnxPredictor`.

``target="geodeep"`` writes the variant GeoDeep can run (docs/models.md): three
input channels, bands 1-3 of the scene as GeoDeep reads them, scaled by GeoDeep
(``x / 255`` for uint8 scenes, ``x / 65535`` for uint16) and scaled back to raw
values inside the graph before geounet's standardisation; the output is two
channels ``[1 - q, q]`` for a binary model (GeoDeep takes an argmax over
channels, so one sigmoid channel would always be class 0), where ``q`` is the
probability mapped so that the model's threshold falls on 0.5. Its geounet
metadata says ``input_scaling="geodeep"``, so geounet runs the file as GeoDeep does.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from geounet._deprecated import moved_to
from geounet.errors import InvalidOptionError, ModelFileError
from geounet.io.atomic import atomic_path
from geounet.io.checksum import file_sha256
from geounet.models.metadata import ModelMetadata, import_optional
from geounet.models.modelfile import LoadedModel, as_loaded
from geounet.models.onnx_metadata import write_onnx_metadata
from geounet.pipeline.tiling import padded_size

__all__ = ["GEODEEP_SCALES", "TARGETS", "export_onnx"]

TARGETS = ("geounet", "geodeep")
"""Export targets: geounet's graph (geounet, Deepness) and the GeoDeep variant."""
GEODEEP_SCALES = {"uint8": 255.0, "uint16": 65535.0}
"""What GeoDeep divides a scene of each data type by (``geodeep/detection.py``)."""

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


class _Graph:
    """What :func:`export_onnx` traces: the module, its metadata and the client keys."""

    def __init__(self, module: Any, meta: ModelMetadata, keys: dict[str, Any]) -> None:
        self.module, self.meta, self.keys = module, meta, keys


def _geodeep_graph(loaded: LoadedModel, meta: ModelMetadata, scene_dtype: str) -> _Graph:
    """The GeoDeep variant: GeoDeep-scaled bands 1-3 in, ``[1 - q, q]`` (or softmax) out."""
    import torch

    if scene_dtype not in GEODEEP_SCALES:
        raise InvalidOptionError(
            f"scene dtype {scene_dtype!r} cannot be undone in a GeoDeep graph: expected "
            f"{' or '.join(GEODEEP_SCALES)} (GeoDeep scales float scenes by each tile's "
            "min-max, which no graph can undo)")
    if not set(meta.bands) <= {1, 2, 3}:
        raise InvalidOptionError(
            f"model {meta.name!r} reads bands {meta.bands}; GeoDeep feeds a graph bands 1-3 "
            "only (R, G, B): export a model trained on bands among 1, 2, 3")
    scale = GEODEEP_SCALES[scene_dtype]
    net = _with_activation(loaded.module, meta.binary)
    pick = [b - 1 for b in meta.bands]
    gain = torch.tensor([scale / s for s in meta.band_std],
                        dtype=torch.float32).reshape(1, -1, 1, 1)
    offset = torch.tensor([m / s for m, s in zip(meta.band_mean, meta.band_std, strict=True)],
                          dtype=torch.float32).reshape(1, -1, 1, 1)
    t = float(meta.threshold)

    class GeoDeepGraph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            p = self.net(x[:, pick] * gain - offset)  # raw values, standardised
            if not meta.binary:
                return p
            if t != 0.5:  # the model's threshold moves to 0.5, where GeoDeep's argmax cuts
                p = torch.where(p < t, p * (0.5 / t), 0.5 + (p - t) * (0.5 / (1 - t)))
            return torch.cat([1 - p, p], dim=1)

    out_meta = replace(meta, bands=[1, 2, 3], band_names=["red", "green", "blue"],
                       band_mean=[0.0] * 3, band_std=[scale] * 3, input_scaling="geodeep",
                       threshold=0.5 if meta.binary else meta.threshold)
    # Deepness standardises x / 255 with these: (x / 255) / (scale / 255) == GeoDeep's x / scale
    return _Graph(GeoDeepGraph().eval(), out_meta,
                  {"seg_thresh": 0.5 if meta.binary else 0.0})


def export_onnx(model: LoadedModel | str | os.PathLike | None = None,
                output: str | os.PathLike = "model.onnx", tile_size_px: int | None = None,
                overwrite: bool = False, opset: int = 17, target: str = "geounet",
                scene_dtype: str = "uint8", seg_small_segment: int = 0) -> Path:
    """Export a model to ONNX with probabilities as output.

    Args:
        model: Model file path, bundled name, ``LoadedModel`` or ``None`` (default model).
        output: ``.onnx`` file to write (atomically).
        tile_size_px: Fixed tile size of the graph in pixels (default: the model's
            recommended tile size); rounded up to the model's ``pad_multiple``.
        overwrite: Replace an existing file.
        opset: ONNX opset version.
        target: ``"geounet"`` (geounet and Deepness) or ``"geodeep"`` (see the
            module docstring).
        scene_dtype: For ``"geodeep"``: the data type of the scenes it will
            run on (``"uint8"`` or ``"uint16"``), whose GeoDeep scaling the
            graph undoes.
        seg_small_segment: Deepness's and GeoDeep's small-segment filter
            (``seg_small_segment``, px); 0, the default, turns both off.

    Returns:
        The path written.

    Raises:
        MissingDependencyError: if ``onnx`` is not installed.
        ModelFileError: if ``model`` is already an ONNX model.
        InvalidOptionError: for an unknown target, or a GeoDeep export of a
            model that reads bands beyond 3 or for another scene dtype.
        OutputExistsError, OutputNotWritableError: the usual output errors.
    """
    torch: Any = import_optional("torch", extra="torch")
    import_optional("onnx", extra="torch")
    if target not in TARGETS:
        raise InvalidOptionError(f"export target {target!r} is unknown: expected one of "
                                 f"{', '.join(TARGETS)}")
    loaded = as_loaded(model)
    if loaded.format == "onnx":
        raise ModelFileError(f"{str(loaded.path)!r} is already an ONNX model")
    tile = padded_size(tile_size_px or loaded.metadata.tile_size_px, loaded.metadata.pad_multiple)
    meta = replace(loaded.metadata, tile_size_px=tile,
                   overlap_px=min(loaded.metadata.overlap_px, tile // 2))
    graph = (_geodeep_graph(loaded, meta, scene_dtype) if target == "geodeep"
             else _Graph(_with_activation(loaded.module, meta.binary), meta, {}))
    x = torch.zeros(1, graph.meta.in_channels, tile, tile)
    with atomic_path(output, overwrite=overwrite) as tmp:
        torch.onnx.export(
            graph.module, (x,), str(tmp), input_names=["input"], output_names=["probabilities"],
            dynamic_axes={"input": {0: "batch"}, "probabilities": {0: "batch"}},
            opset_version=opset, dynamo=False,
        )
        # the GeoDeep variant records no source: it is never a .safetensors file's companion
        source = file_sha256(loaded.path) if target == "geounet" else None
        write_onnx_metadata(tmp, graph.meta, tile, source,
                            seg_small_segment=seg_small_segment, **graph.keys)
    log.info("exported %s to %s (tile %d px, for %s)", meta.name, output, tile, target)
    return Path(output)
