"""The training loop, one method per phase (as torchgeo's ``SemanticSegmentationTask``).

:meth:`Trainer.fit` runs :meth:`~Trainer.prepare_data` (:mod:`geounet.training.data`),
:meth:`~Trainer.configure_model`, :meth:`~Trainer.configure_loss`,
:meth:`~Trainer.configure_optimizers` (Adam, Kingma and Ba 2015; optional cosine schedule),
then per epoch :meth:`~Trainer.train_epoch` (:mod:`~geounet.training.sampling`,
:mod:`~geounet.training.losses`), :meth:`~Trainer.validate` (same tiling and blending as
``geounet predict``) and :meth:`~Trainer.checkpoint`, and finally :meth:`~Trainer.save`.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from geounet.constants import CLASS_NODATA
from geounet.context import context_metadata
from geounet.errors import InvalidOptionError
from geounet.io.atomic import check_output
from geounet.io.checksum import file_sha256
from geounet.measure_context import measure_trained
from geounet.metrics import iou_from_labels
from geounet.models.metadata import ModelMetadata, default_colors, import_optional
from geounet.models.modelfile import save_model
from geounet.models.registry import build_model
from geounet.pipeline.arrays import predict_array
from geounet.pipeline.predictors import Predictor, resolve_device
from geounet.progress import NullProgress, Progress, check_cancelled
from geounet.training.config import TrainConfig, TrainResult
from geounet.training.data import TrainingData, prepare_data
from geounet.training.losses import balanced_class_weights, segmentation_loss
from geounet.training.sampling import sample_batch

log = logging.getLogger(__name__)


class Trainer:
    """Trains a segmentation model on one scene and its label polygons.

    Args:
        config: Training options (default :class:`TrainConfig`).
        progress: Reporter; the ``train`` stage counts optimiser steps.

    Attributes:
        config: The options.
        data: The :class:`~geounet.training.data.TrainingData` (from :meth:`prepare_data`).
        model: The ``torch.nn.Module`` (from :meth:`configure_model`).
        history: Per-epoch ``{"epoch", "loss", "val_iou"}``.
        best_epoch: 1-based epoch of the checkpoint kept so far.
    """

    data: TrainingData

    def __init__(self, config: TrainConfig | None = None,
                 progress: Progress | None = None) -> None:
        import_optional("torch", extra="torch")  # training needs torch: say so first
        self.config = config or TrainConfig()
        self.progress = progress or NullProgress()
        self.rng = np.random.default_rng(self.config.seed)
        self.model: Any = None
        self.device: Any = None
        self.class_weight: Any = None
        self.optimizer: Any = None
        self.scheduler: Any = None
        self.history: list[dict[str, Any]] = []
        self.best_state: dict[str, Any] | None = None
        self.best_score, self.best_epoch, self.pad_multiple, self.step = -1.0, 0, 32, 0

    @property
    def total_steps(self) -> int:
        """Optimiser steps of the whole run (epochs x steps per epoch)."""
        return self.config.epochs * self.config.steps_per_epoch

    def prepare_data(self, scene: str | os.PathLike, labels: str | os.PathLike) -> TrainingData:
        """Read the scene and labels and split them (:func:`~geounet.training.data.prepare_data`).

        Args:
            scene: Raster with a CRS.
            labels: Label polygons (any CRS).

        Returns:
            The training data, also kept as :attr:`data`.

        Raises:
            EmptySceneError: if every pixel is nodata.
            LabelError: for unusable labels.
            RegionError: for a bad validation region.
        """
        self.data = prepare_data(scene, labels, self.config)
        return self.data

    def configure_model(self) -> Any:
        """Build the architecture on the device.

        Returns:
            The ``torch.nn.Module``, also kept as :attr:`model`.

        Raises:
            InvalidOptionError: if the tile size is not a multiple of what the
                architecture needs.
            DeviceError: for an unavailable device.
        """
        cfg, data = self.config, self.data
        self.device = resolve_device(cfg.device)
        self.model = build_model(cfg.arch, len(data.bands), data.out_channels,
                                 **cfg.arch_args).to(self.device)
        self.pad_multiple = int(getattr(self.model, "pad_multiple", 32))
        if cfg.tile_size_px % self.pad_multiple:
            raise InvalidOptionError(
                f"training tile size {cfg.tile_size_px} px is not a multiple of "
                f"{self.pad_multiple}, which architecture {cfg.arch!r} needs; pass e.g. "
                f"--tile-size {-(-cfg.tile_size_px // self.pad_multiple) * self.pad_multiple}"
            )
        return self.model

    def configure_loss(self) -> Any:
        """Set the cross-entropy class weights (``class_weighting="balanced"``).

        Returns:
            ``(k,)`` float32 torch weights, or ``None`` (unweighted; always for a binary model).
        """
        import torch

        data = self.data
        balanced = self.config.class_weighting == "balanced"
        self.class_weight = None
        if data.binary and balanced:
            log.warning("class weighting 'balanced' applies to multi-class models; this one is "
                        "binary (BCE + Dice), so it is not weighted")
        if not data.binary and balanced:
            w = balanced_class_weights(data.train_labels, data.classes)
            self.class_weight = torch.tensor(w, dtype=torch.float32, device=self.device)
        return self.class_weight

    def configure_optimizers(self) -> tuple[Any, Any]:
        """Adam over the model's parameters, and the learning-rate schedule.

        Returns:
            ``(optimizer, scheduler)``; no scheduler (``None``) for a constant rate.
        """
        import torch

        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.config.lr)
        self.scheduler = (
            torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=self.total_steps)
            if self.config.lr_schedule == "cosine" else None)
        return self.optimizer, self.scheduler

    def training_step(self, x: np.ndarray, y: np.ndarray) -> float | None:
        """One optimiser step on a batch.

        A batch without labelled pixels makes no update but is a step of the schedule.

        Args:
            x: ``(b, c, t, t)`` float32 scaled tiles.
            y: ``(b, t, t)`` int64 class ids (``CLASS_NODATA``: not trained on).

        Returns:
            The batch loss, or ``None`` for a batch without labels.

        Raises:
            CancelledError: if the progress reporter asks to stop.
        """
        import torch

        xb = torch.from_numpy(x).to(self.device)
        yb = torch.from_numpy(y).to(self.device)
        logits = self.model(xb)
        loss = segmentation_loss(logits, yb, self.data.binary, self.class_weight)
        if loss is not None:
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.step += 1
        if loss is None:
            return None
        self.progress(self.step, self.total_steps, "train")
        check_cancelled(self.progress)
        return float(loss.detach())

    def train_epoch(self) -> float:
        """Run one epoch of ``steps_per_epoch`` steps.

        Returns:
            The mean loss of the steps with labels (NaN when none had).
        """
        cfg, data = self.config, self.data
        self.model.train()
        losses = []
        for _ in range(cfg.steps_per_epoch):
            x, y = sample_batch(self.rng, data.scaled, data.train_labels, cfg.tile_size_px,
                                cfg.batch_size, data.val_window)
            loss = self.training_step(x, y)
            if loss is not None:
                losses.append(loss)
        return float(np.mean(losses)) if losses else float("nan")

    def validate(self) -> float | None:
        """Predict the validation pixels (plus ``overlap_px`` context) and score them.

        Returns:
            Foreground IoU (binary) or mean IoU (several classes), or ``None``
            without validation truth.
        """
        cfg, data = self.config, self.data
        if not data.has_validation:
            return None
        self.model.eval()
        predictor = Predictor(self.model, data.binary, self.pad_multiple, self.device,
                              precision="fp32", channels_last=False)
        height, width = data.val_labels.shape
        rows, cols = np.nonzero(data.val_labels != CLASS_NODATA)
        m = cfg.overlap_px
        r0, c0 = max(0, int(rows.min()) - m), max(0, int(cols.min()) - m)
        r1, c1 = min(height, int(rows.max()) + 1 + m), min(width, int(cols.max()) + 1 + m)
        probs = predict_array(predictor, data.scaled[:, r0:r1, c0:c1], data.out_channels,
                              cfg.tile_size_px, cfg.overlap_px, cfg.batch_size)
        pred = (probs[0] >= cfg.threshold) if data.binary else probs.argmax(0)
        return iou_from_labels(pred, data.val_labels[r0:r1, c0:c1], len(data.classes),
                               background=data.spec.background_class)

    def checkpoint(self, epoch: int, loss: float, val_iou: float | None) -> None:
        """Record an epoch; keep its weights if its score is the best so far.

        The score is the validation IoU, else the negative loss (``keep="last"``: the epoch).

        Args:
            epoch: 1-based epoch.
            loss: Its mean training loss.
            val_iou: Its validation IoU, or ``None``.
        """
        self.history.append({"epoch": epoch, "loss": loss, "val_iou": val_iou})
        log.info("epoch %d/%d loss %.4f val IoU %s", epoch, self.config.epochs, loss,
                 "n/a" if val_iou is None else f"{val_iou:.4f}")
        score = val_iou if val_iou is not None else -loss
        if self.config.keep == "last":
            score = epoch
        if self.best_state is None or score > self.best_score:
            self.best_score, self.best_epoch = score, epoch
            self.best_state = copy.deepcopy(
                {k: v.detach().cpu() for k, v in self.model.state_dict().items()})

    def metadata(self, scene: str | os.PathLike, labels: str | os.PathLike,
                 seconds: float) -> ModelMetadata:
        """The model file's metadata, with the training record.

        Args:
            scene: The training scene (named and hashed).
            labels: The label file (named and hashed).
            seconds: Wall time so far, in seconds.

        Returns:
            The :class:`~geounet.models.metadata.ModelMetadata`.
        """
        import torch

        cfg, data = self.config, self.data
        config = asdict(cfg)
        config.pop("device")
        background = data.spec.background_class
        val_iou = self.history[self.best_epoch - 1]["val_iou"]
        training = {
            "scene": os.path.basename(str(scene)), "scene_sha256": file_sha256(scene),
            "labels": os.path.basename(str(labels)), "labels_sha256": file_sha256(labels),
            "config": config, "best_epoch": self.best_epoch, "val_iou": val_iou,
            "held_out_rows": data.held_rows, "history": self.history,
            "torch": torch.__version__, "seconds": round(seconds, 1),
        }
        return ModelMetadata(
            name=cfg.name, architecture=cfg.arch, arch_args=dict(cfg.arch_args),
            bands=list(data.bands), band_names=cfg.band_names or [f"band{b}" for b in data.bands],
            band_mean=[float(v) for v in data.band_mean],
            band_std=[float(v) for v in data.band_std],
            classes=data.classes, gsd_m=round(data.gsd_m, 4), tile_size_px=cfg.tile_size_px,
            overlap_px=cfg.overlap_px, threshold=cfg.threshold, pad_multiple=self.pad_multiple,
            background_class=background, class_colors=default_colors(data.classes, background),
            training=training,
        )

    def save(self, output: str | os.PathLike, scene: str | os.PathLike,
             labels: str | os.PathLike, t_start: float) -> TrainResult:
        """Load the kept checkpoint and write the model file (atomically).

        Args:
            output: ``.safetensors`` file to write.
            scene: The training scene.
            labels: The label file.
            t_start: ``time.perf_counter()`` at the start of the run.

        Returns:
            The :class:`TrainResult`.
        """
        self.model.load_state_dict(self.best_state)
        self.model.to("cpu")
        meta = self.metadata(scene, labels, time.perf_counter() - t_start)
        measure = measure_trained(self.model, meta, self.data.scaled, self.config.tile_size_px,
                                  self.config.batch_size, self.config.seed,
                                  scene=os.path.basename(str(scene)))
        if measure is not None:
            meta = replace(meta, **context_metadata(meta, measure))
        save_model(self.model, meta, output)
        return TrainResult(
            path=Path(output),
            best_epoch=self.best_epoch,
            val_iou=self.history[self.best_epoch - 1]["val_iou"],
            history=self.history,
            seconds=time.perf_counter() - t_start,
        )

    def fit(self, scene: str | os.PathLike, labels: str | os.PathLike,
            output: str | os.PathLike, overwrite: bool = False) -> TrainResult:
        """Run every phase and write the model file (see :func:`train`).

        Args:
            scene: Raster with a CRS.
            labels: Label polygons (any CRS; reprojected).
            output: ``.safetensors`` model file to write.
            overwrite: Replace an existing output.

        Returns:
            The :class:`TrainResult`.

        Raises:
            GeounetError: subclasses for bad scenes, labels, regions, options, outputs.
        """
        import torch

        cfg = self.config
        t_start = time.perf_counter()
        check_output(output, overwrite)
        self.rng = np.random.default_rng(cfg.seed)
        torch.manual_seed(cfg.seed)
        data = self.prepare_data(scene, labels)
        self.configure_model()
        self.configure_loss()
        self.configure_optimizers()
        log.info(
            "training %s on %s: %d classes %s, %d bands, val region %s, %d epochs x %d steps",
            cfg.arch, scene, len(data.classes), data.classes, len(data.bands), cfg.val_region,
            cfg.epochs, cfg.steps_per_epoch,
        )
        self.progress(0, self.total_steps, "train")
        for epoch in range(1, cfg.epochs + 1):
            loss = self.train_epoch()
            self.checkpoint(epoch, loss, self.validate())
        return self.save(output, scene, labels, t_start)


def train(
    scene: str | os.PathLike,
    labels: str | os.PathLike,
    output: str | os.PathLike,
    config: TrainConfig | None = None,
    progress: Progress | None = None,
    overwrite: bool = False,
) -> TrainResult:
    """Train a model on one scene and write a geounet model file.

    The scene is read whole into memory (training scenes are chips, not
    cities). See :class:`Trainer` for the phases.

    Args:
        scene: Raster with a CRS.
        labels: Label polygons (any CRS; reprojected).
        output: ``.safetensors`` model file to write (atomically).
        config: :class:`TrainConfig`.
        progress: Reporter; ``train`` stage counts steps.
        overwrite: Replace an existing output.

    Returns:
        A :class:`TrainResult`.

    Raises:
        GeounetError: subclasses for bad scenes, labels, regions, outputs.
    """
    return Trainer(config, progress).fit(scene, labels, output, overwrite)
