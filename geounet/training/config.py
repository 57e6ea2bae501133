"""Options and result of :func:`geounet.training.train`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geounet.constants import DEFAULT_OVERLAP_PX, DEFAULT_THRESHOLD, DEFAULT_TILE_SIZE_PX
from geounet.errors import InvalidOptionError
from geounet.labels import LabelSpec


@dataclass(frozen=True)
class TrainConfig:
    """Options of :func:`~geounet.training.train`.

    Attributes:
        arch: Registered architecture (``unet``, ``smp_unet``...).
        arch_args: Its options, e.g. ``{"base_channels": 16, "depth": 4}`` or
            ``{"encoder_name": "resnet18"}``.
        bands: 1-based bands to train on (default: all).
        band_names: Names of the bands (default ``band1``...).
        label_column: Attribute holding the class of each polygon; ``None``
            makes a binary model of ``class_name``.
        class_name: Name of the foreground class of a binary model.
        epochs: Number of epochs.
        steps_per_epoch: Optimiser steps per epoch.
        batch_size: Tiles per step.
        tile_size_px: Training tile size in pixels (also the recommended
            inference tile size stored in the model).
        overlap_px: Recommended inference overlap in pixels stored in the model
            (also the overlap of the validation prediction).
        lr: Adam learning rate.
        seed: Seed of every random choice; equal seeds give equal models on CPU.
        val_region: Held-out region (see :mod:`geounet.regions`), or ``None``.
        device: ``auto``, ``cpu``, ``cuda[:N]``.
        name: Model name stored in the file.
        threshold: Default probability threshold stored in the model.
        keep: ``"best"`` keeps the epoch with the best validation IoU (the
            validation region then takes part in model selection);
            ``"last"`` keeps the last epoch, so the region is only monitored
            and its figures are a true held-out test.
        lr_schedule: ``"cosine"`` anneals the learning rate from ``lr`` to 0
            over all steps (Loshchilov and Hutter 2017, SGDR, without
            restarts); ``"constant"`` keeps it.
        unlabelled: ``"background"``: pixels outside every polygon are class
            0, ``background`` (dense labels, e.g. building footprints).
            ``"ignore"``: they are left out of the loss and the model has no
            background class (sparse labels, e.g. land-cover polygons).
        class_map: Label value (as text) -> class name, in class-id order
            (several values may share a name); ``None`` takes the sorted
            unique values of ``label_column`` as names. Polygons whose value
            is not in the map are not used.
        val_polygons: Fraction ``0 < f < 1`` of each class's polygons held out
            for validation, chosen with ``seed`` (at least one per class that
            has two or more polygons, never all of them), or ``None``.
        class_weighting: ``"none"`` or ``"balanced"``: cross-entropy weights
            proportional to the inverse pixel frequency of each class among
            the training labels (multi-class models).
        augment: Augmentation of the training tiles
            (:func:`geounet.training.augment.parse_augment`): ``none``,
            ``flips`` (90-degree rotations and flips), ``full`` (also per-band
            brightness, contrast and gamma, blur, noise and scale jitter), or
            a comma list of groups.
        workers: Worker processes reading the training windows (0: read in
            the training process); ``None``: ``min(4, CPUs - 1)``.
        init: Start from this model's weights (a bundled name, a geounet
            model file, or anything ``geounet import`` reads), or ``None``.
            Its architecture, band statistics (see ``init_band_stats``),
            GSD and pad multiple are kept; classes are matched by name
            (:func:`geounet.training.finetune.adapt_classes`).
        init_band_stats: ``"keep"`` the starting model's band statistics, or
            ``"recompute"`` them on the new scenes.
        freeze_encoder_epochs: Train only the decoder for this many first
            epochs (fine-tuning), then everything.
        gsd_m: Training GSD in m/px when there is no starting model
            (``None``: the first training scene's); other scenes are read at it.
        mixed_precision: ``"auto"`` (CUDA: autocast to bfloat16, or float16
            with a gradient scaler, where bfloat16 is not supported; CPU:
            float32) or ``"off"``.
        channels_last: ``"auto"`` (CUDA: channels-last memory format), ``"on"``, ``"off"``.
        compile: Compile the model with ``torch.compile``.
        log_dir: Folder of the checkpoints and records (``None``: the model
            file's name without suffix, plus ``.train``).
        tensorboard: Write TensorBoard events when the package is installed.

    Raises:
        InvalidOptionError: for an option out of range, not understood, or in
            conflict with another (e.g. ``val_polygons`` with dense labels).
    """

    arch: str = "unet"
    arch_args: dict[str, Any] = field(default_factory=lambda: {"base_channels": 16, "depth": 4})
    bands: list[int] | None = None
    band_names: list[str] | None = None
    label_column: str | None = None
    class_name: str = "building"
    epochs: int = 20
    steps_per_epoch: int = 50
    batch_size: int = 8
    tile_size_px: int = DEFAULT_TILE_SIZE_PX
    overlap_px: int = DEFAULT_OVERLAP_PX
    lr: float = 1e-3
    seed: int = 0
    val_region: str | None = "east:0.25"
    device: str = "auto"
    name: str = "model"
    threshold: float = DEFAULT_THRESHOLD
    keep: str = "best"
    lr_schedule: str = "cosine"
    unlabelled: str = "background"
    class_map: dict[str, str] | None = None
    val_polygons: float | None = None
    class_weighting: str = "none"
    augment: str = "flips"
    workers: int | None = None
    init: str | None = None
    init_band_stats: str = "keep"
    freeze_encoder_epochs: int = 0
    gsd_m: float | None = None
    mixed_precision: str = "auto"
    channels_last: str = "auto"
    compile: bool = False
    log_dir: str | None = None
    tensorboard: bool = True

    def __post_init__(self) -> None:
        _ = self.label_spec  # LabelSpec checks ``unlabelled``
        if self.class_weighting not in ("none", "balanced"):
            raise InvalidOptionError(
                f"class weighting {self.class_weighting!r} must be 'none' or 'balanced'"
            )
        if self.val_polygons is not None and not 0 < self.val_polygons < 1:
            raise InvalidOptionError(
                f"validation polygon fraction {self.val_polygons} must be between 0 and 1 "
                "(exclusive), e.g. --val-polygons 0.3"
            )
        if self.val_polygons is not None and self.unlabelled != "ignore":
            raise InvalidOptionError(
                f"--val-polygons {self.val_polygons} holds out whole polygons, which only "
                "scores sparse labels: with dense labels (--unlabelled background) the held-out "
                "pixels would all be foreground and any model that predicts everything would "
                "score 1.0; pass --unlabelled ignore, or hold out a region with --val-region"
            )
        if self.class_map is not None and self.label_column is None:
            raise InvalidOptionError("a class map needs a label column: pass --label-column too")
        if self.lr_schedule not in ("cosine", "constant"):
            raise InvalidOptionError(
                f"lr schedule {self.lr_schedule!r} must be 'cosine' or 'constant'")
        if self.keep not in ("best", "last"):
            raise InvalidOptionError(f"keep {self.keep!r} must be 'best' or 'last'")
        for attr in ("epochs", "steps_per_epoch", "batch_size"):
            if getattr(self, attr) < 1:
                raise InvalidOptionError(f"{attr} {getattr(self, attr)} must be 1 or more")
        if self.lr <= 0:
            raise InvalidOptionError(f"learning rate {self.lr} must be positive, e.g. --lr 1e-3")
        for attr, choices in (("init_band_stats", ("keep", "recompute")),
                              ("mixed_precision", ("auto", "off")),
                              ("channels_last", ("auto", "on", "off"))):
            if getattr(self, attr) not in choices:
                raise InvalidOptionError(f"{attr} {getattr(self, attr)!r} must be one of "
                                         f"{', '.join(choices)}")
        if self.freeze_encoder_epochs < 0 or (self.workers is not None and self.workers < 0):
            raise InvalidOptionError("freeze_encoder_epochs and workers must be 0 or more")
        if self.tile_size_px < 32:
            raise InvalidOptionError(f"training tile size {self.tile_size_px} px must be >= 32")

    @property
    def label_spec(self) -> LabelSpec:
        """The label options (column, class name, class map, unlabelled) as a :class:`LabelSpec`.

        Raises:
            InvalidOptionError: if ``unlabelled`` is not understood.
        """
        return LabelSpec(self.label_column, self.class_name, self.class_map, self.unlabelled)


@dataclass
class TrainResult:
    """What :func:`~geounet.training.train` produced.

    Attributes:
        path: Model file written.
        best_epoch: 1-based epoch of the kept checkpoint (see ``keep``).
        val_iou: Its validation IoU (foreground IoU, or mean IoU for
            several classes); ``None`` without a validation region.
        history: Per-epoch ``{"epoch", "loss", "val_iou"}``.
        seconds: Wall time in seconds.
        log_dir: Folder of the checkpoint and records.
    """

    path: Path
    best_epoch: int
    val_iou: float | None
    history: list[dict[str, Any]]
    seconds: float
    log_dir: Path | None = None
