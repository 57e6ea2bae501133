"""What a training run records as it goes: JSON lines, TensorBoard, a curve PNG.

In the run's log folder (``geounet train --log-dir``; default
``<model file without suffix>.train/`` beside it):

* ``metrics.jsonl``: one JSON object per epoch: ``epoch``, ``loss`` (mean
  training loss), ``val_iou`` (``null`` without validation), ``lr`` (at the
  epoch's end), ``seconds`` (wall time of the epoch's steps, validation left out), ``steps_per_s``,
  ``tiles_per_s`` and ``rss_mb`` (peak resident memory of the process so far,
  MiB). Rewritten from the checkpoint's history when a run resumes, so it
  never holds an epoch twice.
* TensorBoard event files (``tensorboard/``) when the ``tensorboard`` package
  is installed (``torch.utils.tensorboard``); else nothing, logged once.
* ``curves.png``: loss and validation IoU by epoch (matplotlib, when installed),
  redrawn after every epoch.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

METRICS_NAME = "metrics.jsonl"
CURVES_NAME = "curves.png"


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (``getrusage``)."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kb / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


class TrainingLog:
    """The records of one run, in its log folder.

    Args:
        folder: The log folder (created).
        history: Records of epochs done before a resume (rewritten first).
        tensorboard: Write TensorBoard events when the package is installed.
    """

    def __init__(self, folder: str | os.PathLike, history: list[dict[str, Any]] | None = None,
                 tensorboard: bool = True) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.records: list[dict[str, Any]] = list(history or [])
        path = self.folder / METRICS_NAME
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in self.records))
        os.replace(tmp, path)
        self.writer = self._tensorboard() if tensorboard else None

    def _tensorboard(self) -> Any:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log.info("tensorboard is not installed: no TensorBoard events (pip install "
                     "tensorboard); metrics.jsonl has every figure")
            return None
        return SummaryWriter(str(self.folder / "tensorboard"))

    def epoch(self, record: dict[str, Any]) -> None:
        """Append one epoch's record (see the module docstring) and redraw the curves."""
        self.records.append(record)
        with open(self.folder / METRICS_NAME, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for key, value in record.items():
                if key != "epoch" and isinstance(value, (int, float)):
                    self.writer.add_scalar(key, value, record["epoch"])
            self.writer.flush()
        plot_curves(self.records, self.folder / CURVES_NAME)

    def close(self) -> None:
        """Close the TensorBoard writer."""
        if self.writer is not None:
            self.writer.close()


def plot_curves(records: list[dict[str, Any]], png: str | os.PathLike) -> Path | None:
    """Draw training loss and validation IoU by epoch into a PNG (written atomically).

    Args:
        records: Per-epoch records with ``epoch``, ``loss`` and ``val_iou``.
        png: The image to write.

    Returns:
        The path, or ``None`` when matplotlib is not installed (logged).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.info("matplotlib is not installed: no %s", CURVES_NAME)
        return None
    epochs = [r["epoch"] for r in records]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(epochs, [r["loss"] for r in records], "o-", color="tab:blue", label="training loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss", color="tab:blue")
    iou = [(r["epoch"], r["val_iou"]) for r in records if r.get("val_iou") is not None]
    if iou:
        ax2 = ax.twinx()
        ax2.plot(*zip(*iou, strict=True), "s-", color="tab:orange", label="validation IoU")
        ax2.set_ylabel("validation IoU", color="tab:orange")
        ax2.set_ylim(0, 1)
    ax.set_title("geounet train")
    fig.tight_layout()
    png = Path(png)
    tmp = png.with_name(f".{png.stem}.{os.getpid()}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, png)
    return png
