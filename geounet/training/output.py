"""The model file a training run writes: weights kept, metadata, measured context.

The metadata's ``training`` record holds the options, the dataset (every
scene and label file by name and SHA-256, with its split, bounds, held-out
region and polygons; :meth:`geounet.training.data.TrainingData.record`), the
kept epoch, the history of loss and validation IoU, and, for a fine-tuning,
the starting model and what became of its classes. It holds no wall times
(those are in the log folder's ``metrics.jsonl``), so equal inputs and seeds
give the same file on the same machine, also after ``--resume``.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from geounet.context import context_metadata
from geounet.measure_context import measure_trained
from geounet.models.metadata import ModelMetadata, default_colors
from geounet.models.modelfile import save_model
from geounet.training.config import TrainResult

log = logging.getLogger(__name__)


def training_record(trainer: Any) -> dict[str, Any]:
    """The ``training`` metadata of a run (see the module docstring)."""
    import torch

    from geounet.training.augment import parse_augment

    data, setup = trainer.data, trainer.setup
    dataset = setup.dataset_record
    first = dataset[0]
    record: dict[str, Any] = {
        # the first scene, as single-scene models record it
        "scene": first["scene"], "scene_sha256": first["scene_sha256"],
        "labels": first["labels"], "labels_sha256": first["labels_sha256"],
        "dataset": dataset, "config": trainer.config_record(),
        "best_epoch": trainer.best_epoch,
        "val_iou": trainer.history[trainer.best_epoch - 1]["val_iou"],
        "held_out_rows": sorted({r for rows in data.held_rows.values() for r in rows})
        if len(data.held_rows) == 1 else [],
        "augment": parse_augment(trainer.config.augment).to_dict(),
        "history": trainer.history, "torch": torch.__version__,
        "world_size": trainer.env.world,
    }
    if setup.init_meta is not None:
        record["init"] = {"model": setup.init_meta.name, "classes": setup.finetune,
                          "band_stats": trainer.config.init_band_stats}
    return record


def trained_metadata(trainer: Any) -> ModelMetadata:
    """The model file's metadata of a run."""
    cfg, data, setup = trainer.config, trainer.data, trainer.setup
    init = setup.init_meta
    names = cfg.band_names or (init.band_names if init is not None else None)
    background = data.spec.background_class
    return ModelMetadata(
        name=cfg.name, architecture=setup.arch, arch_args=dict(setup.arch_args),
        bands=list(data.bands), band_names=names or [f"band{b}" for b in data.bands],
        band_mean=[float(v) for v in data.band_mean],
        band_std=[float(v) for v in data.band_std],
        classes=data.classes, gsd_m=round(data.gsd_m, 4), tile_size_px=cfg.tile_size_px,
        overlap_px=cfg.overlap_px, threshold=cfg.threshold, pad_multiple=setup.pad_multiple,
        background_class=background, class_colors=default_colors(data.classes, background),
        training=training_record(trainer),
    )


def save_trained(trainer: Any, output: str | os.PathLike, t_start: float) -> TrainResult:
    """Load the kept weights, measure the context, write the model file (rank 0).

    Args:
        trainer: The :class:`~geounet.training.trainer.Trainer` after its epochs.
        output: ``.safetensors`` file to write (atomically).
        t_start: ``time.perf_counter()`` at the start of the run.

    Returns:
        The :class:`TrainResult`.
    """
    cfg, setup = trainer.config, trainer.setup
    result = TrainResult(path=Path(output), best_epoch=trainer.best_epoch,
                         val_iou=trainer.history[trainer.best_epoch - 1]["val_iou"],
                         history=trainer.history, seconds=0.0, log_dir=setup.log_dir)
    if not trainer.env.main:
        result.seconds = time.perf_counter() - t_start
        return result
    module = setup.module
    module.load_state_dict(trainer.best_state)
    module.to("cpu")
    meta = trained_metadata(trainer)
    first = next(ts for ts in trainer.data.scenes if ts.spec.split == "train")
    with first.open() as sc:
        measure = measure_trained(module, meta, sc, trainer.data.scaler, cfg.tile_size_px,
                                  cfg.batch_size, cfg.seed,
                                  name=os.path.basename(first.spec.scene))
    if measure is not None:
        meta = replace(meta, **context_metadata(meta, measure))
    save_model(module, meta, output)
    result.seconds = time.perf_counter() - t_start
    return result
