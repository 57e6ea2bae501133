"""Stage 3 - predict: batches of tiles through the model.

Tiles are scaled with the model's per-band statistics, padded (reflect) to a
multiple the network accepts, run under ``torch.inference_mode()`` (with fp16
autocast on CUDA unless disabled), turned into probabilities (sigmoid for
one-channel models, softmax otherwise) and cropped back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

import numpy as np

from geounet.errors import DeviceError

log = logging.getLogger(__name__)


def resolve_device(spec: str = "auto"):
    """Turn ``auto|cpu|cuda|cuda:N|mps`` into a ``torch.device``.

    ``auto`` is CUDA when available, else CPU.

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


class Predictor:
    """Runs a model over batches of scaled tiles.

    Args:
        module: ``torch.nn.Module`` mapping ``(b, c, h, w)`` to ``(b, k, h, w)``
            logits.
        binary: One sigmoid channel (True) or a softmax over ``k`` channels.
        pad_multiple: Tiles are padded so ``h`` and ``w`` are multiples of this.
        device: ``torch.device`` or a string for :func:`resolve_device`.
        amp: fp16 autocast on CUDA.
    """

    def __init__(self, module, binary: bool, pad_multiple: int = 32, device="cpu", amp=True):
        import torch

        self.device = resolve_device(device) if isinstance(device, str) else device
        self.module = module.to(self.device).eval()
        self.binary = binary
        self.pad_multiple = max(1, int(pad_multiple))
        self.amp = bool(amp) and self.device.type == "cuda"
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

        b, c, h, w = batch.shape
        m = self.pad_multiple
        ph, pw = -(-h // m) * m - h, -(-w // m) * m - w
        x = torch.from_numpy(np.ascontiguousarray(batch))
        if self.device.type == "cuda":
            x = x.pin_memory().to(self.device, non_blocking=True)
        else:
            x = x.to(self.device)
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        with torch.inference_mode():
            with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
                logits = self.module(x)
            logits = logits.float()[:, :, :h, :w]
            probs = torch.sigmoid(logits) if self.binary else torch.softmax(logits, dim=1)
        return probs.cpu().numpy()


def batched(items: Iterable, size: int) -> Iterator[list]:
    """Group an iterable into lists of ``size`` (the last may be shorter)."""
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
