"""Stage 3 - predict, ONNX graph runtimes: onnxruntime and OpenVINO.

Both run the same exported graph (:mod:`geounet.export`: standardised
``(b, c, t, t)`` float32 in, probabilities out, batch dimension dynamic, tile
size fixed), and graphs made for Deepness or GeoDeep
(:mod:`geounet.models.foreign_onnx`: a ``(b, h, w)`` output, or two channels
for a binary model, are shaped as geounet's; a graph with a dynamic tile size
is fed tiles of the model's tile size). Tiles smaller than the graph's tile
are padded at the bottom and right as the torch predictor pads them
(reflect, or edge where the pad is larger than the tile) and the output is
cropped back, so every runtime sees the same pixels.

OpenVINO lowers precision on its own on CPUs with bf16 units (its CPU plugin's
``INFERENCE_PRECISION_HINT`` defaults to bf16 there: max |dp| 0.13 on the
bundled building model, measured on this project's AVX512-BF16 machines), so
geounet sets the hint to f32 unless ``precision="bf16"`` is asked for.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from geounet.errors import DeviceError, GeounetError, InvalidOptionError
from geounet.models.foreign_onnx import fit_output
from geounet.models.metadata import import_optional
from geounet.models.onnx_metadata import onnx_tile_size, read_onnx_metadata


def pad_to(batch: np.ndarray, size: int) -> np.ndarray:
    """Pad ``(b, c, h, w)`` tiles at the bottom and right to ``size`` x ``size``.

    Args:
        batch: ``(b, c, h, w)`` float32, ``h, w <= size``.
        size: The graph's tile size in pixels.

    Returns:
        ``(b, c, size, size)`` float32: reflect padding, or edge padding where
        the pad is not smaller than the tile (as ``torch.nn.functional.pad``
        in :class:`geounet.pipeline.predictors.Predictor`).

    Raises:
        InvalidOptionError: for a tile larger than the graph's.
    """
    _, _, h, w = batch.shape
    if h > size or w > size:
        raise InvalidOptionError(
            f"tile of {h}x{w} px is larger than the ONNX graph's {size} px; export the model "
            "for this tile size (geounet export --tile-size) or pass a smaller --tile-size")
    ph, pw = size - h, size - w
    if not (ph or pw):
        return np.ascontiguousarray(batch, np.float32)
    widths = ((0, 0), (0, 0), (0, ph), (0, pw))
    if ph < h and pw < w:
        return np.pad(batch, widths, mode="reflect").astype(np.float32)
    return np.pad(batch, widths, mode="edge").astype(np.float32)


def graph_geometry(path: str | os.PathLike[str]) -> tuple[int, int]:
    """The tile size a graph is fed and the output channels its model's metadata expects.

    Args:
        path: The ``.onnx`` file.

    Returns:
        ``(tile_px, channels)``: the graph's fixed input size (else the
        metadata's tile size), and the metadata's output channels (0 when the
        graph has no metadata geounet reads, e.g. a bare test graph).
    """
    tile = onnx_tile_size(path)
    try:
        meta = read_onnx_metadata(path)
    except GeounetError:
        return tile, 0
    return tile or meta.tile_size_px, meta.out_channels


class GraphPredictor:
    """Pads tiles to the graph's size, runs the graph, crops the probabilities.

    Subclasses set :attr:`tile` and :attr:`channels` (:func:`graph_geometry`)
    and implement :meth:`run`.
    """

    runtime = "graph"
    tile: int
    channels: int = 0

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run the graph on ``(b, c, tile, tile)`` float32 input; ``(b, k, tile, tile)`` out."""
        raise NotImplementedError

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Predict probabilities for a batch of tiles.

        Args:
            batch: ``(b, c, h, w)`` float32 scaled tiles, ``h, w`` at most the
                graph's tile size (px).

        Returns:
            ``(b, k, h, w)`` float32 probabilities.
        """
        _, _, h, w = batch.shape
        out = fit_output(self.run(pad_to(batch, self.tile)), self.channels)
        return np.ascontiguousarray(out[:, :, :h, :w], np.float32)


class OnnxPredictor(GraphPredictor):
    """Runs an ONNX graph with onnxruntime.

    Args:
        path: The ``.onnx`` file.
        device: ``cpu``, or ``cuda``/``auto`` to use the CUDA execution
            provider when onnxruntime has it.

    Raises:
        MissingDependencyError: if ``onnx`` or ``onnxruntime`` is not installed.
    """

    runtime = "onnxruntime"

    def __init__(self, path: str | os.PathLike[str], device: str = "auto") -> None:
        ort = import_optional("onnxruntime")
        providers = ["CPUExecutionProvider"]
        if device != "cpu" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(str(path), providers=providers)
        self.input = self.session.get_inputs()[0].name
        self.tile, self.channels = graph_geometry(path)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run the session on ``(b, c, tile, tile)`` float32 input."""
        return np.asarray(self.session.run(None, {self.input: batch})[0])


class OpenVinoPredictor(GraphPredictor):
    """Runs an ONNX graph with OpenVINO on the CPU.

    Args:
        path: The ``.onnx`` file.
        device: ``cpu`` or ``auto`` (OpenVINO's ``CPU`` device).
        precision: ``auto``/``fp32`` (``INFERENCE_PRECISION_HINT`` f32) or
            ``bf16`` (OpenVINO's bf16 on CPUs that have it).

    Raises:
        MissingDependencyError: if ``openvino`` is not installed.
        DeviceError: for a CUDA or MPS device (OpenVINO runs on the CPU here).
    """

    runtime = "openvino"

    def __init__(self, path: str | os.PathLike[str], device: str = "auto",
                 precision: str = "auto") -> None:
        if device not in ("auto", "cpu"):
            raise DeviceError(
                f"runtime openvino runs on the CPU, not on device {device!r}; pass --device cpu "
                "or another --runtime")
        ov: Any = import_optional("openvino", extra="openvino")
        hint = "bf16" if precision == "bf16" else "f32"
        self.compiled = ov.Core().compile_model(str(path), "CPU",
                                                {"INFERENCE_PRECISION_HINT": hint})
        self.tile, self.channels = graph_geometry(path)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run the compiled model on ``(b, c, tile, tile)`` float32 input."""
        return np.asarray(self.compiled(batch)[0])
