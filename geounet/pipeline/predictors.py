"""Stage 3 - predict: choose a runtime, build its predictor, test-time augmentation.

A predictor is a callable ``(b, c, h, w)`` float32 scaled tiles ->
``(b, k, h, w)`` float32 probabilities. :data:`RUNTIMES` holds one factory per
runtime, all registered the same way: ``torch``
(:mod:`geounet.pipeline.runtime_torch`), ``onnxruntime`` and ``openvino``
(:mod:`geounet.pipeline.runtime_onnx`, on the model's ONNX graph, exported on
demand and cached by :mod:`geounet.onnx_cache`). :func:`choose_runtime` is the
rule of ``runtime="auto"``; :func:`make_predictor` builds the predictor and
wraps it in :class:`TTAPredictor` on request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

import numpy as np

from geounet.config import PredictConfig
from geounet.errors import InvalidOptionError
from geounet.models.metadata import import_optional, installed
from geounet.models.modelfile import LoadedModel
from geounet.onnx_cache import onnx_graph
from geounet.pipeline.calibrate import fastest_runtime
from geounet.pipeline.runtime_onnx import OnnxPredictor, OpenVinoPredictor
from geounet.pipeline.runtime_torch import (
    Predictor,
    auto_channels_last,
    auto_precision,
    resolve_device,
)

log = logging.getLogger(__name__)

__all__ = [
    "RUNTIMES",
    "OnnxPredictor",
    "OpenVinoPredictor",
    "PredictFn",
    "Predictor",
    "TTAPredictor",
    "auto_channels_last",
    "auto_precision",
    "batched",
    "choose_runtime",
    "installed",
    "make_predictor",
    "onnx_predictor",
    "openvino_predictor",
    "resolve_device",
    "resolve_runtime",
    "runtime_candidates",
    "torch_predictor",
]

PredictFn = Callable[[np.ndarray], np.ndarray]
"""A predictor: ``(b, c, h, w)`` float32 scaled tiles -> ``(b, k, h, w)`` float32 probabilities."""

T = TypeVar("T")


def _flip_w(a: np.ndarray) -> np.ndarray:
    return a[..., ::-1]


def _tta_transforms(mode: str) -> list[tuple[Callable, Callable]]:
    """``(forward, inverse)`` pairs of array functions on the last two axes."""
    def rot(k: int) -> tuple[Callable, Callable]:
        return (lambda a: np.rot90(a, k, axes=(-2, -1)),
                lambda a: np.rot90(a, -k, axes=(-2, -1)))

    if mode == "flips":
        return [(lambda a: a, lambda a: a), (_flip_w, _flip_w),
                (lambda a: a[..., ::-1, :], lambda a: a[..., ::-1, :])]
    if mode == "d4":
        out = []
        for k in range(4):
            f, i = rot(k)
            out.append((f, i))
            out.append(((lambda a, f=f: f(_flip_w(a))), (lambda a, i=i: _flip_w(i(a)))))
        return out
    raise InvalidOptionError(f"unknown test-time augmentation {mode!r}")


class TTAPredictor:
    """Test-time augmentation around a predictor.

    Each batch goes through the model once per transform of the dihedral
    group of the square (``flips``: identity and the two mirror flips, 3
    passes; ``d4``: the 4 rotations by 90 degrees, each also mirrored, 8
    passes); each output is transformed back and the probabilities are
    averaged, before stitching. Averaging over flips and rotations is the
    usual test-time augmentation of segmentation (e.g. the SpaceNet and
    DeepGlobe winning solutions; Buslaev et al. 2018, "Fully convolutional
    network for automatic road extraction from satellite imagery").

    Args:
        base: A predictor: ``(b, c, h, w)`` float32 -> ``(b, k, h, w)`` float32.
        mode: ``"flips"`` or ``"d4"``.

    Raises:
        InvalidOptionError: (a ``ValueError``) for another mode.
    """

    def __init__(self, base: PredictFn, mode: str) -> None:
        self.base = base
        self.mode = mode
        self.transforms = _tta_transforms(mode)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Predict mean probabilities over the transforms.

        Args:
            batch: ``(b, c, h, w)`` float32 scaled tiles (``h == w`` for ``d4``).

        Returns:
            ``(b, k, h, w)`` float32 mean probabilities.
        """
        outs = (inv(self.base(np.ascontiguousarray(fwd(batch)))) for fwd, inv in self.transforms)
        acc = next(outs).astype(np.float32, copy=True)
        for p in outs:
            acc = acc + p
        acc /= len(self.transforms)
        return np.ascontiguousarray(acc)


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Group an iterable into lists of ``size`` (the last may be shorter).

    Args:
        items: Any iterable.
        size: Items per list (>= 1).

    Yields:
        Lists of consecutive items.
    """
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def torch_predictor(loaded: LoadedModel, config: PredictConfig, tile_size_px: int) -> PredictFn:
    """The torch runtime: a :class:`Predictor` for a loaded ``.safetensors`` model.

    Args:
        loaded: The model (its ``module`` a ``torch.nn.Module``).
        config: Device, precision and channels_last options.
        tile_size_px: The run's tile size (tiles are padded as they come).

    Returns:
        The predictor.

    Raises:
        MissingDependencyError: if torch is not installed.
        InvalidOptionError: for an ONNX model (no torch module).
        DeviceError: as :class:`Predictor`.
    """
    import_optional("torch", extra="torch")
    if loaded.module is None:
        raise InvalidOptionError(
            f"runtime torch runs .safetensors models; {str(loaded.path)!r} is an ONNX graph: "
            "pass --runtime onnxruntime (or openvino), or the model's .safetensors file")
    meta = loaded.metadata
    return Predictor(loaded.module, meta.binary, meta.pad_multiple, config.device,
                     config.precision, config.channels_last)


def _fp32_only(name: str, config: PredictConfig) -> None:
    if config.precision in ("bf16", "fp16"):
        raise InvalidOptionError(
            f"runtime {name} runs fp32 here, not precision {config.precision}; pass --runtime "
            "torch for autocast" + (" or --runtime openvino for bf16" if config.precision ==
                                    "bf16" else ""))


def onnx_predictor(loaded: LoadedModel, config: PredictConfig, tile_size_px: int) -> PredictFn:
    """The onnxruntime runtime, on the model's ONNX graph (exported and cached if needed).

    Args:
        loaded: An ``.onnx`` or ``.safetensors`` model.
        config: The device option (CUDA provider when available and not ``cpu``).
        tile_size_px: The run's tile size (the graph's, for an export).

    Returns:
        The predictor.

    Raises:
        MissingDependencyError: if onnxruntime (or, to export, onnx) is not installed.
        InvalidOptionError: for a reduced precision.
    """
    _fp32_only("onnxruntime", config)
    return OnnxPredictor(onnx_graph(loaded, tile_size_px), config.device)


def openvino_predictor(loaded: LoadedModel, config: PredictConfig,
                       tile_size_px: int) -> PredictFn:
    """The OpenVINO runtime (CPU), on the model's ONNX graph (exported and cached if needed).

    Args:
        loaded: An ``.onnx`` or ``.safetensors`` model.
        config: Device (CPU only) and precision (``bf16`` allowed) options.
        tile_size_px: The run's tile size (the graph's, for an export).

    Returns:
        The predictor.

    Raises:
        MissingDependencyError: if openvino (or, to export, onnx) is not installed.
        DeviceError: for a GPU device.
        InvalidOptionError: for fp16.
    """
    if config.precision == "fp16":
        _fp32_only("openvino", config)
    return OpenVinoPredictor(onnx_graph(loaded, tile_size_px), config.device, config.precision)


RUNTIMES: dict[str, Callable[[LoadedModel, PredictConfig, int], PredictFn]] = {
    "torch": torch_predictor,
    "onnxruntime": onnx_predictor,
    "openvino": openvino_predictor,
}
"""Predictor factories by runtime name (:attr:`geounet.config.PredictConfig.runtime`)."""


def choose_runtime(loaded: LoadedModel, config: PredictConfig) -> tuple[str, str]:
    """The runtime ``config.runtime="auto"`` picks, and why.

    The rule, measured with ``benchmarks/runtimes.py`` (docs/performance.md):
    torch when it is installed, on a GPU (autocast) and on the CPU, where on
    this project's AVX-512 and AVX2 machines warmed-up torch fp32
    channels_last ran the models as fast as onnxruntime and OpenVINO (they ran
    at 0.83-1.22x of it model only, 0.89-1.16x end to end); else (the default,
    torch-free install) onnxruntime, or OpenVINO when only that is installed.
    ``runtime="fastest"`` measures on the machine instead.

    Args:
        loaded: The loaded model.
        config: Its ``runtime`` is used.

    Returns:
        ``(runtime, reason)``.
    """
    if config.runtime != "auto":
        return config.runtime, "asked for"
    if loaded.format != "onnx" and installed("torch"):
        return "torch", ("torch is installed; on this project's AVX-512 and AVX2 CPUs it was as "
                         "fast as the ONNX runtimes (benchmarks/runtimes.py)")
    why = "ONNX model" if installed("torch") else "torch is not installed"
    if not installed("onnxruntime") and installed("openvino"):
        return "openvino", f"{why}; onnxruntime is not installed"
    return "onnxruntime", why


def runtime_candidates(loaded: LoadedModel) -> list[str]:
    """The installed runtimes that can run ``loaded``, torch first.

    Args:
        loaded: The model (an ONNX graph cannot run on torch).

    Returns:
        Runtime names.
    """
    out = ["torch"] if loaded.format != "onnx" and installed("torch") else []
    return out + [n for n in ("onnxruntime", "openvino") if installed(n)]


def resolve_runtime(loaded: LoadedModel, config: PredictConfig,
                    tile_size_px: int) -> tuple[str, str]:
    """The runtime a run uses, and why: ``auto``'s rule, ``fastest``'s calibration, or as asked.

    Args:
        loaded: The model.
        config: Prediction options.
        tile_size_px: The run's tile size in pixels.

    Returns:
        ``(runtime, reason)``.
    """
    if config.runtime == "fastest":
        return fastest_runtime(loaded, config, tile_size_px, RUNTIMES,
                               runtime_candidates(loaded) or ["torch"])
    return choose_runtime(loaded, config)


def make_predictor(loaded: LoadedModel, config: PredictConfig,
                   tile_size_px: int | None = None) -> PredictFn:
    """The predictor for a loaded model, from :data:`RUNTIMES` (see :func:`choose_runtime`).

    Args:
        loaded: A :class:`~geounet.models.modelfile.LoadedModel`.
        config: A :class:`~geounet.config.PredictConfig`; with ``tta`` the
            predictor is wrapped in a :class:`TTAPredictor`.
        tile_size_px: The run's tile size in pixels (default: the model's).

    Returns:
        The predictor; its ``runtime`` attribute names the runtime.

    Raises:
        DeviceError: for an unavailable device or precision.
        MissingDependencyError: for a runtime that is not installed.
        InvalidOptionError: for a runtime that cannot run this model or precision.
    """
    tile_px = tile_size_px or loaded.metadata.tile_size_px
    name, why = resolve_runtime(loaded, config, tile_px)
    log.info("runtime %s (%s)", name, why)
    predictor = RUNTIMES[name](loaded, config, tile_px)
    tta = getattr(config, "tta", "none")
    out = predictor if tta == "none" else TTAPredictor(predictor, tta)
    setattr(out, "runtime", name)  # noqa: B010 - predictors are plain callables
    return out
