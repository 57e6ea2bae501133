"""ONNX export of geounet models, readable by geounet itself and by the Deepness QGIS plugin.

The exported graph takes ``(batch, bands, tile, tile)`` float32 input that is already
standardised and ends in the probabilities (sigmoid for binary models, softmax
otherwise); the batch dimension is dynamic, the tile size fixed.

``metadata_props`` holds, each value JSON-encoded, the keys Deepness reads
(https://qgis-plugin-deepness.readthedocs.io, "Model metadata"):
``model_type`` (``"Segmentor"``), ``class_names`` (``{0: "background", ...}``),
``resolution`` (cm per pixel), ``tiles_size``, ``tiles_overlap`` (percent),
``standardization_mean``, ``standardization_std`` and ``seg_thresh``; and
``geounet``, the full :class:`~geounet.models.modelfile.ModelMetadata`.

Deepness divides pixel values by 255 before standardising, so the mean and
standard deviation it gets are geounet's per-band statistics divided by 255:
``((x / 255) - mean / 255) / (std / 255) == (x - mean) / std``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from geounet.errors import GeounetError, ModelFileError

log = logging.getLogger(__name__)

ONNX_METADATA_KEY = "geounet"


def _require(module: str, extra: str = "onnx"):
    from importlib import import_module

    try:
        return import_module(module)
    except ImportError as exc:
        raise GeounetError(
            f"{module} is not installed; install it with: pip install 'geounet[{extra}]'"
        ) from exc


def deepness_metadata(meta, tile_size_px: int) -> dict[str, str]:
    """``metadata_props`` for Deepness, each value JSON-encoded (see module docstring)."""
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
    out[ONNX_METADATA_KEY] = meta.to_json()
    return out


def export_onnx(model=None, output: str | os.PathLike = "model.onnx",
                tile_size_px: int | None = None, overwrite: bool = False,
                opset: int = 17) -> Path:
    """Export a model to ONNX with probabilities as output.

    Args:
        model: Model file path, bundled name, ``LoadedModel`` or ``None`` (default model).
        output: ``.onnx`` file to write (atomically).
        tile_size_px: Fixed tile size of the graph (default: the model's
            recommended tile size); rounded up to the model's ``pad_multiple``.
        overwrite: Replace an existing file.
        opset: ONNX opset version.

    Returns:
        The path written.

    Raises:
        GeounetError: if ``onnx`` is not installed; the usual output errors.
    """
    import torch

    from geounet.io.atomic import atomic_path
    from geounet.models.modelfile import LoadedModel, load_model
    from geounet.tiling import padded_size

    onnx = _require("onnx")
    from dataclasses import replace

    loaded = model if isinstance(model, LoadedModel) else load_model(model)
    if loaded.module is None:
        raise GeounetError(f"{str(loaded.path)!r} is already an ONNX model")
    tile = padded_size(tile_size_px or loaded.metadata.tile_size_px, loaded.metadata.pad_multiple)
    meta = replace(loaded.metadata, tile_size_px=tile,
                   overlap_px=min(loaded.metadata.overlap_px, tile // 2))

    class WithActivation(torch.nn.Module):
        def __init__(self, net, binary):
            super().__init__()
            self.net = net
            self.binary = binary

        def forward(self, x):
            y = self.net(x)
            return torch.sigmoid(y) if self.binary else torch.softmax(y, dim=1)

    wrapped = WithActivation(loaded.module.eval().cpu(), meta.binary).eval()
    x = torch.zeros(1, meta.in_channels, tile, tile)
    with atomic_path(output, overwrite=overwrite) as tmp:
        torch.onnx.export(
            wrapped, (x,), str(tmp), input_names=["input"], output_names=["probabilities"],
            dynamic_axes={"input": {0: "batch"}, "probabilities": {0: "batch"}},
            opset_version=opset, dynamo=False,
        )
        proto = onnx.load(str(tmp))
        del proto.metadata_props[:]
        for k, v in deepness_metadata(meta, tile).items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = k, v
        onnx.save(proto, str(tmp))
    log.info("exported %s to %s (tile %d px)", meta.name, output, tile)
    return Path(output)


def read_onnx_metadata(path: str | os.PathLike):
    """The :class:`ModelMetadata` stored in an exported ``.onnx`` file.

    Raises:
        ModelFileError: if the file is not an ONNX model exported by geounet.
    """
    from geounet.models.modelfile import ModelMetadata

    onnx = _require("onnx")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - any parse failure is a corrupt file
        raise ModelFileError(f"{str(path)!r} is not a readable ONNX model ({exc})") from exc
    props = {p.key: p.value for p in proto.metadata_props}
    if ONNX_METADATA_KEY not in props:
        raise ModelFileError(
            f"ONNX model {str(path)!r} has no geounet metadata; export it with geounet export"
        )
    return ModelMetadata.from_json(props[ONNX_METADATA_KEY], str(path))


def onnx_tile_size(path: str | os.PathLike) -> int:
    """The fixed tile size (input height) of an exported graph."""
    onnx = _require("onnx")
    proto = onnx.load(str(path), load_external_data=False)
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    return int(dims[2].dim_value)


class OnnxPredictor:
    """Runs an exported ``.onnx`` model with onnxruntime (same interface as
    :class:`geounet.inference.Predictor`).

    Args:
        path: The ``.onnx`` file.
        device: ``cpu``, or ``cuda``/``auto`` to use the CUDA execution
            provider when onnxruntime has it.
    """

    def __init__(self, path, device: str = "auto") -> None:
        ort = _require("onnxruntime")
        providers = ["CPUExecutionProvider"]
        if device != "cpu" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(str(path), providers=providers)
        self.input = self.session.get_inputs()[0].name
        self.tile = onnx_tile_size(path)

    def __call__(self, batch):
        """``(b, c, t, t)`` float32 scaled input -> ``(b, k, t, t)`` probabilities."""
        import numpy as np

        return self.session.run(None, {self.input: np.ascontiguousarray(batch, np.float32)})[0]
