"""Stage 3 - predict: batches of tiles through the model, with torch or onnxruntime.

A predictor is a callable ``(b, c, h, w)`` float32 scaled tiles ->
``(b, k, h, w)`` float32 probabilities. :func:`make_predictor` picks one from
:data:`RUNTIMES` by the runtime of the loaded model's format (torch for
``.safetensors`` files, onnxruntime for exported ``.onnx`` graphs) and wraps it
in :class:`TTAPredictor` on request.

With torch, tiles are padded (reflect) to a multiple the network accepts, run
under ``torch.inference_mode()`` with optional ``torch.autocast`` (fp16 on CUDA
by default; bf16 on request) and channels_last memory format, turned into
probabilities (sigmoid for one-channel models, softmax otherwise) and cropped
back. On CUDA, batches are copied from pinned memory without blocking.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import numpy as np

from geounet.config import PredictConfig
from geounet.errors import DeviceError, InvalidOptionError
from geounet.models.metadata import import_optional, onnx_tile_size
from geounet.models.modelfile import LoadedModel
from geounet.pipeline.tiling import padded_size

log = logging.getLogger(__name__)

PredictFn = Callable[[np.ndarray], np.ndarray]
"""A predictor: ``(b, c, h, w)`` float32 scaled tiles -> ``(b, k, h, w)`` float32 probabilities."""

T = TypeVar("T")


def resolve_device(spec: str = "auto") -> Any:
    """Turn ``auto|cpu|cuda|cuda:N|mps`` into a ``torch.device``.

    ``auto`` is CUDA when available, else CPU.

    Args:
        spec: Device name.

    Returns:
        The ``torch.device``.

    Raises:
        DeviceError: if CUDA/MPS (or that CUDA index) is not available.
    """
    import torch

    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {spec!r} was requested but CUDA is not available on this machine; "
                "pass --device cpu (or auto)"
            )
        index = int(spec.split(":")[1]) if ":" in spec else 0
        if index >= torch.cuda.device_count():
            raise DeviceError(
                f"device {spec!r} does not exist: this machine has "
                f"{torch.cuda.device_count()} CUDA device(s) (cuda:0..cuda:"
                f"{torch.cuda.device_count() - 1})"
            )
        return torch.device(spec)
    if spec == "mps":
        if not torch.backends.mps.is_available():
            raise DeviceError("device 'mps' is not available; pass --device cpu")
        return torch.device("mps")
    return torch.device(spec)


def auto_precision(device: Any) -> str:
    """The autocast dtype ``precision="auto"`` picks on ``device``.

    fp16 on CUDA (tensor cores). fp32 on CPU: on the AVX512-BF16 CPUs of our
    CI machines bf16 autocast ran 2.2x (smp Unet-resnet34) and 2.8x (the
    bundled model's U-Net) as fast, but it moved the bundled model's
    probabilities by up to 0.12 (0.73 on an untrained Unet-resnet34), so it is
    opt-in (``precision="bf16"``); figures from ``benchmarks/precision.py`` in
    ``docs/performance.md``.

    Args:
        device: A ``torch.device``.

    Returns:
        ``"fp16"`` or ``"fp32"``.
    """
    return "fp16" if device.type == "cuda" else "fp32"


def auto_channels_last(device: Any) -> bool:
    """Whether ``channels_last=None`` turns channels_last on for ``device``.

    On: on the CPU it ran 1.08x (Unet-resnet34) and 1.44x (the bundled U-Net)
    as fast as NCHW with probabilities within 3e-4 of it
    (``benchmarks/precision.py``); on CUDA it is the layout tensor cores use.

    Args:
        device: A ``torch.device``.

    Returns:
        True on CUDA and CPU devices.
    """
    return device.type in ("cuda", "cpu")


class Predictor:
    """Runs a torch model over batches of scaled tiles.

    Args:
        module: ``torch.nn.Module`` mapping ``(b, c, h, w)`` to ``(b, k, h, w)``
            logits.
        binary: One sigmoid channel (True) or a softmax over ``k`` channels.
        pad_multiple: Tiles are padded so ``h`` and ``w`` are multiples of this (px).
        device: ``torch.device`` or a string for :func:`resolve_device`.
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16`` (autocast dtype).
        channels_last: ``torch.channels_last`` memory format (None: by device).

    Raises:
        DeviceError: for an unavailable device, or fp16 requested on a CPU.
    """

    def __init__(self, module: Any, binary: bool, pad_multiple: int = 32, device: Any = "cpu",
                 precision: str = "auto", channels_last: bool | None = None) -> None:
        import torch

        self.device = resolve_device(device) if isinstance(device, str) else device
        if precision == "auto":
            precision = auto_precision(self.device)
        if precision == "fp16" and self.device.type == "cpu":
            raise DeviceError(
                "precision fp16 needs a GPU; on the CPU pass --precision bf16 or fp32")
        self.precision = precision
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        self.channels_last = (auto_channels_last(self.device) if channels_last is None
                              else bool(channels_last))
        module = module.to(self.device).eval()
        if self.channels_last:
            module = module.to(memory_format=torch.channels_last)
        self.module = module
        self.binary = binary
        self.pad_multiple = max(1, int(pad_multiple))
        self._torch = torch

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Predict probabilities for a batch of tiles.

        Args:
            batch: ``(b, c, h, w)`` float32 scaled input.

        Returns:
            ``(b, k, h, w)`` float32 probabilities in [0, 1] (``k`` = 1 for
            binary models).
        """
        torch = self._torch
        import torch.nn.functional as F

        _, _, h, w = batch.shape
        ph = padded_size(h, self.pad_multiple) - h
        pw = padded_size(w, self.pad_multiple) - w
        x = torch.from_numpy(np.ascontiguousarray(batch))
        if self.device.type == "cuda":
            x = x.pin_memory().to(self.device, non_blocking=True)
        else:
            x = x.to(self.device)
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            with torch.autocast(self.device.type, dtype=self.dtype or torch.float32,
                                enabled=self.dtype is not None):
                logits = self.module(x)
            logits = logits.float()[:, :, :h, :w]
            probs = torch.sigmoid(logits) if self.binary else torch.softmax(logits, dim=1)
        return probs.contiguous().cpu().numpy()


class OnnxPredictor:
    """Runs an exported ``.onnx`` model with onnxruntime (same interface as :class:`Predictor`).

    Args:
        path: The ``.onnx`` file.
        device: ``cpu``, or ``cuda``/``auto`` to use the CUDA execution
            provider when onnxruntime has it.

    Raises:
        MissingDependencyError: if ``onnx`` or ``onnxruntime`` is not installed.
    """

    def __init__(self, path: str | os.PathLike, device: str = "auto") -> None:
        ort = import_optional("onnxruntime")
        providers = ["CPUExecutionProvider"]
        if device != "cpu" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(str(path), providers=providers)
        self.input = self.session.get_inputs()[0].name
        self.tile = onnx_tile_size(path)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Predict probabilities for a batch of tiles.

        Args:
            batch: ``(b, c, t, t)`` float32 scaled input, ``t`` the graph's tile size (px).

        Returns:
            ``(b, k, t, t)`` float32 probabilities.
        """
        return self.session.run(None, {self.input: np.ascontiguousarray(batch, np.float32)})[0]


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


def torch_predictor(loaded: LoadedModel, config: PredictConfig) -> Predictor:
    """The torch runtime: a :class:`Predictor` for a loaded ``.safetensors`` model.

    Args:
        loaded: The model (its ``module`` a ``torch.nn.Module``).
        config: Device, precision and channels_last options.

    Returns:
        The predictor.

    Raises:
        DeviceError: as :class:`Predictor`.
    """
    meta = loaded.metadata
    return Predictor(loaded.module, meta.binary, meta.pad_multiple, config.device,
                     config.precision, config.channels_last)


def onnx_predictor(loaded: LoadedModel, config: PredictConfig) -> OnnxPredictor:
    """The onnxruntime runtime: an :class:`OnnxPredictor` for a loaded ``.onnx`` graph.

    Args:
        loaded: The model (its ``path`` the ``.onnx`` file).
        config: The device option.

    Returns:
        The predictor.

    Raises:
        MissingDependencyError: if onnxruntime is not installed.
    """
    return OnnxPredictor(loaded.path, config.device)


RUNTIMES: dict[str, Callable[[LoadedModel, PredictConfig], PredictFn]] = {
    "torch": torch_predictor,
    "onnxruntime": onnx_predictor,
}
"""Predictor factories by runtime name (:attr:`geounet.models.modelfile.ModelFormat.runtime`)."""


def make_predictor(loaded: LoadedModel, config: PredictConfig) -> PredictFn:
    """The predictor for a loaded model, from :data:`RUNTIMES` by its format's runtime.

    Args:
        loaded: A :class:`~geounet.models.modelfile.LoadedModel`.
        config: A :class:`~geounet.config.PredictConfig`; with ``tta`` the
            predictor is wrapped in a :class:`TTAPredictor`.

    Returns:
        The predictor.

    Raises:
        DeviceError: for an unavailable device or precision.
        MissingDependencyError: for an ONNX model without onnxruntime.
    """
    predictor = RUNTIMES[loaded.runtime](loaded, config)
    tta = getattr(config, "tta", "none")
    return predictor if tta == "none" else TTAPredictor(predictor, tta)
