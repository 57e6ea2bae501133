"""Stage 3 - predict, the torch runtime: batches of tiles through a ``torch.nn.Module``.

Tiles, already scaled by the reader, are padded (reflect) to a multiple the
network accepts, run under ``torch.inference_mode()`` with optional
``torch.autocast`` (fp16 on CUDA by default; bf16 on request) and channels_last
memory format, turned into probabilities (sigmoid for one-channel models,
softmax otherwise) and cropped back. On CUDA, batches are copied from pinned
memory without blocking.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from geounet._alloc import tune_allocator
from geounet.errors import DeviceError
from geounet.models.metadata import import_optional
from geounet.pipeline.tiling import padded_size


def resolve_device(spec: str = "auto") -> Any:
    """Turn ``auto|cpu|cuda|cuda:N|mps`` into a ``torch.device``.

    ``auto`` is CUDA when available, else CPU.

    Args:
        spec: Device name.

    Returns:
        The ``torch.device``.

    Raises:
        DeviceError: if CUDA/MPS (or that CUDA index) is not available.
        MissingDependencyError: if torch is not installed.
    """
    torch: Any = import_optional("torch", extra="torch")

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
        torch: Any = import_optional("torch", extra="torch")

        self.device = resolve_device(device) if isinstance(device, str) else device
        if self.device.type == "cpu":  # the API gets the CLI's allocator settings too
            tune_allocator()
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
