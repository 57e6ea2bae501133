"""The training loop, one method per phase (as torchgeo's ``SemanticSegmentationTask``).

:meth:`Trainer.fit` runs :meth:`~Trainer.prepare_data` (:mod:`geounet.training.data`),
:meth:`~Trainer.configure_model` (built, or from ``--init``,
:mod:`geounet.training.finetune`), :meth:`~Trainer.configure_loss`,
:meth:`~Trainer.configure_optimizers` (Adam, Kingma and Ba 2015; optional cosine
schedule), then per epoch :meth:`~Trainer.train_epoch` (windows read from disk,
:mod:`~geounet.training.windows`; augmented on the device,
:mod:`~geounet.training.augment`; :mod:`~geounet.training.losses`),
:meth:`~Trainer.validate` (same tiling and blending as ``geounet predict``,
:mod:`~geounet.training.validation`) and :meth:`~Trainer.checkpoint`
(:mod:`~geounet.training.checkpoint`, :mod:`~geounet.training.records`), and
finally :meth:`~Trainer.save`. Under ``torchrun`` it is data-parallel
(:mod:`~geounet.training.ddp`).
"""

from __future__ import annotations

import copy
import logging
import os
import time
from dataclasses import asdict
from typing import Any

import numpy as np

import geounet.training.ddp as ddp
from geounet.errors import InvalidOptionError
from geounet.io.atomic import check_output
from geounet.metrics import iou_from_confusion
from geounet.models.metadata import import_optional
from geounet.progress import NullProgress, Progress, check_cancelled
from geounet.training.config import TrainConfig, TrainResult
from geounet.training.data import TrainingData, class_pixel_counts, prepare_data
from geounet.training.dataset import SceneSpec, pairs
from geounet.training.losses import segmentation_loss, weights_from_counts
from geounet.training.model_setup import ModelSetup
from geounet.training.output import save_trained

log = logging.getLogger(__name__)


class Trainer:
    """Trains a segmentation model on scenes and their label polygons.

    Args:
        config: Training options (default :class:`TrainConfig`).
        progress: Reporter; the ``train`` stage counts optimiser steps.

    Attributes:
        config: The options.
        data: The :class:`~geounet.training.data.TrainingData` (from :meth:`prepare_data`).
        model: The ``torch.nn.Module`` (from :meth:`configure_model`; DDP-wrapped
            under ``torchrun``).
        history: Per-epoch ``{"epoch", "loss", "val_iou"}``.
        best_epoch: 1-based epoch of the weights kept so far.
    """

    data: TrainingData

    def __init__(self, config: TrainConfig | None = None,
                 progress: Progress | None = None) -> None:
        import_optional("torch", extra="torch")  # training needs torch: say so first
        self.config = config or TrainConfig()
        self.progress = progress or NullProgress()
        self.env = ddp.from_environment()
        self.setup = ModelSetup(self.config)
        self.model: Any = None
        self.class_weight: Any = None
        self.optimizer: Any = None
        self.scheduler: Any = None
        self.history: list[dict[str, Any]] = []
        self.best_state: dict[str, Any] | None = None
        self.best_score, self.best_epoch, self.step, self.epoch = -1.0, 0, 0, 0

    @property
    def total_steps(self) -> int:
        """Optimiser steps of the whole run (epochs x steps per epoch)."""
        return self.config.epochs * self.config.steps_per_epoch

    @property
    def pad_multiple(self) -> int:
        """The model's pad multiple (px)."""
        return self.setup.pad_multiple

    def prepare_data(self, dataset: list[SceneSpec] | str | os.PathLike,
                     labels: str | os.PathLike | None = None) -> TrainingData:
        """Prepare the scenes (:func:`~geounet.training.data.prepare_data`).

        Args:
            dataset: The scenes, or one scene path with ``labels``.
            labels: Label polygons of a single scene.

        Returns:
            The training data, also kept as :attr:`data`.

        Raises:
            EmptySceneError: if every training pixel is nodata.
            LabelError: for unusable labels.
            RegionError: for a bad validation region.
        """
        if not isinstance(dataset, list):
            dataset = pairs([str(dataset), str(labels)])
        init = self.setup.load_init()
        self.data = prepare_data(dataset, self.config, init.gsd_m if init else None,
                                 bands=init.bands if init and not self.config.bands else None)
        if init is not None:
            self.setup.init_statistics(self.data)
        return self.data

    def configure_model(self) -> Any:
        """Build the architecture (or adapt the starting model) on the device.

        Returns:
            The ``torch.nn.Module``, also kept as :attr:`model`.

        Raises:
            InvalidOptionError: if the tile size is not a multiple of what the
                architecture needs.
            DeviceError: for an unavailable device.
        """
        self.model = self.setup.build(self.data, self.env)
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
            w = weights_from_counts(class_pixel_counts(data), data.classes)
            self.class_weight = torch.tensor(w, dtype=torch.float32, device=self.setup.device)
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

    def configure_batches(self, output: str | os.PathLike) -> None:
        """Make the window loader, the augmentation and the log folder (beside ``output``).

        Args:
            output: The model file the run writes (names the default log folder).
        """
        self.setup.start(self.data, self.env, output)

    def training_step(self, x: Any, y: Any) -> float | None:
        """One optimiser step on a batch.

        A batch without labelled pixels makes no update but is a step of the schedule.

        Args:
            x: ``(b, c, t, t)`` float32 scaled tiles (numpy or torch).
            y: ``(b, t, t)`` int64 class ids (``CLASS_NODATA``: not trained on).

        Returns:
            The batch loss, or ``None`` for a batch without labels.

        Raises:
            CancelledError: if the progress reporter asks to stop.
        """
        xb, yb = self.setup.to_device(x, y)
        xb, yb = self.setup.augment(xb, yb)
        with self.setup.autocast():
            logits = self.model(xb)
        loss = segmentation_loss(logits.float(), yb, self.data.binary, self.class_weight)
        if loss is not None:
            self.optimizer.zero_grad(set_to_none=True)
            self.setup.backward_step(loss, self.optimizer)
        if self.scheduler is not None:
            self.scheduler.step()
        self.step += 1
        if loss is None:
            return None
        self.progress(self.step, self.total_steps, "train")
        check_cancelled(self.progress)
        return float(loss.detach())

    def train_epoch(self) -> float:
        """Run one epoch of ``steps_per_epoch`` steps (epoch :attr:`epoch` + 1).

        Returns:
            The mean loss of the steps with labels (NaN when none had), over all ranks.
        """
        self.epoch += 1
        self.model.train()
        self.setup.freeze_for_epoch(self.epoch)
        losses = [v for x, y in self.setup.batches(self.epoch)
                  if (v := self.training_step(x, y)) is not None]
        total, count = ddp.mean_over_ranks([float(np.sum(losses)), float(len(losses))],
                                           self.env)
        return total / count if count else float("nan")

    def validate(self) -> float | None:
        """Predict the validation pixels (plus ``overlap_px`` context) and score them.

        Returns:
            Foreground IoU (binary) or mean IoU (several classes) of every held-out
            pixel together, or ``None`` without validation truth (and on ranks > 0).
        """
        from geounet.training.validation import validation_confusion

        if not self.data.has_validation or not self.env.main:
            return None
        cm = validation_confusion(self.setup.predictor(), self.data.scenes,
                                  self.setup.validation_setup(self.data))
        if cm is None:
            return None
        return iou_from_confusion(cm, self.data.spec.background_class)

    def checkpoint(self, epoch: int, loss: float, val_iou: float | None,
                   seconds: float = 0.0) -> None:
        """Record an epoch; keep its weights if its score is the best so far; save the state.

        The score is the validation IoU, else the negative loss (``keep="last"``: the epoch).

        Args:
            epoch: 1-based epoch.
            loss: Its mean training loss.
            val_iou: Its validation IoU, or ``None``.
            seconds: Wall time of its steps (records only).
        """
        self.history.append({"epoch": epoch, "loss": loss, "val_iou": val_iou})
        log.info("epoch %d/%d loss %.4f val IoU %s", epoch, self.config.epochs, loss,
                 "n/a" if val_iou is None else f"{val_iou:.4f}")
        score = val_iou if val_iou is not None else -loss
        if self.config.keep == "last":
            score = epoch
        if self.env.main and (self.best_state is None or score > self.best_score):
            self.best_score, self.best_epoch = score, epoch
            self.best_state = copy.deepcopy(
                {k: v.detach().cpu() for k, v in ddp.unwrap(self.model).state_dict().items()})
        if self.env.main:
            self.setup.record_epoch(self, seconds)

    def state(self) -> dict[str, Any]:
        """Everything a resumed run needs (see :mod:`geounet.training.checkpoint`)."""
        import torch

        return {
            "epoch": self.epoch, "step": self.step, "history": self.history,
            "best_state": self.best_state, "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "model": ddp.unwrap(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "torch_rng": torch.get_rng_state(), "config": self.config_record(),
            "dataset": self.setup.dataset_record,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint's state (:meth:`state`)."""
        import torch

        ddp.unwrap(self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        self.epoch, self.step, self.history = state["epoch"], state["step"], state["history"]
        self.best_state, self.best_score = state["best_state"], state["best_score"]
        self.best_epoch = state["best_epoch"]
        log.info("resuming after epoch %d of %d (step %d)", self.epoch, self.config.epochs,
                 self.step)

    def config_record(self) -> dict[str, Any]:
        """The options as the model file records them (without the device)."""
        config = asdict(self.config)
        for key in ("device", "workers", "log_dir", "tensorboard"):
            config.pop(key)
        return config

    def save(self, output: str | os.PathLike, t_start: float) -> TrainResult:
        """Load the kept weights and write the model file (``output.save_trained``).

        Args:
            output: ``.safetensors`` file to write (atomically; rank 0 only).
            t_start: ``time.perf_counter()`` at the start of the run.

        Returns:
            The :class:`TrainResult`.
        """
        return save_trained(self, output, t_start)

    def fit(self, dataset: list[SceneSpec] | str | os.PathLike,
            labels: str | os.PathLike | None, output: str | os.PathLike,
            overwrite: bool = False, resume: str | os.PathLike | None = None) -> TrainResult:
        """Run every phase and write the model file (see :func:`train`).

        Args:
            dataset: The scenes, or one scene path with ``labels``.
            labels: Label polygons of a single scene (else ``None``).
            output: ``.safetensors`` model file to write.
            overwrite: Replace an existing output.
            resume: A checkpoint (or log folder) of a killed run with the same options.

        Returns:
            The :class:`TrainResult`.

        Raises:
            GeounetError: subclasses for bad scenes, labels, regions, options, outputs.
        """
        import torch

        from geounet.training.checkpoint import check_resumable, load_checkpoint

        cfg, t_start = self.config, time.perf_counter()
        check_output(output, overwrite)
        state = load_checkpoint(resume) if resume else None
        torch.manual_seed(cfg.seed)
        data = self.prepare_data(dataset, labels)
        self.configure_model()
        self.configure_loss()
        self.configure_optimizers()
        self.configure_batches(output)
        if state is not None:
            check_resumable(state, self.config_record(), self.setup.dataset_record)
            self.load_state(state)
        self.setup.open_log(self.history)
        log.info("training %s on %d scene(s): %d classes %s, %d bands, GSD %.4g m, %d epochs "
                 "x %d steps", self.setup.arch, len(data.scenes), len(data.classes),
                 data.classes, len(data.bands), data.gsd_m, cfg.epochs, cfg.steps_per_epoch)
        self.progress(self.step, self.total_steps, "train")
        try:
            while self.epoch < cfg.epochs:
                t0 = time.perf_counter()
                loss = self.train_epoch()
                seconds = time.perf_counter() - t0  # the steps alone, not the validation
                self.checkpoint(self.epoch, loss, self.validate(), seconds)
                ddp.barrier(self.env)
            return self.save(output, t_start)
        finally:
            self.setup.close()


def train(
    scene: str | os.PathLike | list[SceneSpec],
    labels: str | os.PathLike | None,
    output: str | os.PathLike,
    config: TrainConfig | None = None,
    progress: Progress | None = None,
    overwrite: bool = False,
    resume: str | os.PathLike | None = None,
) -> TrainResult:
    """Train a model on one scene or a dataset of scenes and write a geounet model file.

    No scene is read whole: windows are read from disk as they are drawn. See
    :class:`Trainer` for the phases.

    Args:
        scene: Raster with a CRS, or the dataset's scenes
            (:func:`~geounet.training.dataset.read_dataset_csv`,
            :func:`~geounet.training.dataset.pairs`).
        labels: Label polygons of a single scene (any CRS; reprojected), or
            ``None`` with a dataset.
        output: ``.safetensors`` model file to write (atomically).
        config: :class:`TrainConfig`.
        progress: Reporter; ``train`` stage counts steps.
        overwrite: Replace an existing output.
        resume: A checkpoint of a killed run (:mod:`~geounet.training.checkpoint`).

    Returns:
        A :class:`TrainResult` (on ranks > 0 of a data-parallel run: its ``path``
        is the output the main rank writes).

    Raises:
        GeounetError: subclasses for bad scenes, labels, regions, outputs.
    """
    if isinstance(scene, list) and labels is not None:
        raise InvalidOptionError("give a dataset (a list of scenes) or one scene and its "
                                 "labels, not both")
    return Trainer(config, progress).fit(scene, labels, output, overwrite, resume)

