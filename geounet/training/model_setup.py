"""What a :class:`~geounet.training.trainer.Trainer` runs on: model, device, batches, records.

:class:`ModelSetup` holds the parts of a run that are not phases of the loop:
the starting model of a fine-tuning (``--init``), the architecture built on
the device (channels-last, ``torch.compile`` and DDP where asked), mixed
precision, the augmentation, the window loader, encoder freezing, and the log
folder with its checkpoint and records.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

import geounet.training.ddp as ddp
from geounet.errors import InvalidOptionError
from geounet.models.registry import build_model
from geounet.pipeline.predictors import Predictor, resolve_device
from geounet.training.config import TrainConfig
from geounet.training.data import TrainingData

log = logging.getLogger(__name__)


def default_workers() -> int:
    """Window-reading processes when not given: ``min(4, CPUs - 1)``."""
    return max(0, min(4, (os.cpu_count() or 1) - 1))


class ModelSetup:
    """Model, device, precision, batches and records of one run.

    Args:
        config: The run's options.

    Attributes:
        arch, arch_args: The architecture trained (the starting model's with ``init``).
        init_meta: Metadata of the starting model, or ``None``.
        device: The ``torch.device``.
        pad_multiple: The model's pad multiple (px).
        log_dir: The run's log folder (after :meth:`start`).
        finetune: What ``adapt_classes`` did (kept, new, dropped classes), or ``None``.
    """

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.arch, self.arch_args = config.arch, dict(config.arch_args)
        self.init_module: Any = None
        self.init_meta: Any = None
        self.device: Any = None
        self.pad_multiple = 32
        self.finetune: dict[str, Any] | None = None
        self.dataset_record: list[dict[str, Any]] = []
        self.log_dir: Path | None = None
        self.records: Any = None
        self._loader: Any = None
        self._sampler: Any = None
        self._dataset: Any = None
        self._augmenter: Any = None
        self._scaler: Any = None
        self._amp_dtype: Any = None
        self._frozen = False
        self._channels_last = False
        self._binary = True
        self._main = True
        self._module: Any = None

    def load_init(self) -> Any:
        """Load the starting model (``config.init``), once.

        Returns:
            Its metadata, or ``None`` without ``init``.
        """
        if self.config.init is None or self.init_meta is not None:
            return self.init_meta
        from geounet.training.finetune import load_init

        self.init_module, self.init_meta = load_init(self.config.init)
        self.arch, self.arch_args = self.init_meta.architecture, dict(self.init_meta.arch_args)
        if self.config.arch != self.arch:
            log.info("--init %s: training its architecture %s (not --arch %s)",
                     self.config.init, self.arch, self.config.arch)
        return self.init_meta

    def init_statistics(self, data: TrainingData) -> None:
        """Keep the starting model's band statistics in ``data`` (``init_band_stats="keep"``)."""
        from geounet.training.finetune import init_band_statistics

        data.band_mean, data.band_std = init_band_statistics(
            self.init_meta, data.band_mean, data.band_std,
            keep=self.config.init_band_stats == "keep")

    def build(self, data: TrainingData, env: ddp.DistEnv) -> Any:
        """The model on the device, ready to train (wrapped for DDP under ``torchrun``).

        Raises:
            InvalidOptionError: if the tile size is not a multiple of the pad multiple.
            DeviceError: for an unavailable device.
        """
        import torch

        cfg = self.config
        self._binary = data.binary
        self.device = ddp.setup(env, resolve_device(cfg.device))
        if self.init_module is not None:
            from geounet.training.finetune import adapt_classes

            module, self.finetune = adapt_classes(self.init_module, self.init_meta,
                                                  data.classes, self.arch)
            log.info("fine-tuning from %s: classes %s", cfg.init, self.finetune)
        else:
            module = build_model(self.arch, len(data.bands), data.out_channels,
                                 **self.arch_args)
        self.pad_multiple = int(getattr(module, "pad_multiple", 32))
        if cfg.tile_size_px % self.pad_multiple:
            raise InvalidOptionError(
                f"training tile size {cfg.tile_size_px} px is not a multiple of "
                f"{self.pad_multiple}, which architecture {self.arch!r} needs; pass e.g. "
                f"--tile-size {-(-cfg.tile_size_px // self.pad_multiple) * self.pad_multiple}"
            )
        module = module.to(self.device)
        cuda = self.device.type == "cuda"
        if cfg.channels_last == "on" or (cfg.channels_last == "auto" and cuda):
            module = module.to(memory_format=torch.channels_last)
        self._channels_last = cfg.channels_last == "on" or (cfg.channels_last == "auto"
                                                            and cuda)
        if cfg.mixed_precision == "auto" and cuda:
            bf16 = torch.cuda.is_bf16_supported()
            self._amp_dtype = torch.bfloat16 if bf16 else torch.float16
            self._scaler = None if bf16 else torch.amp.GradScaler("cuda")
        self._module = module
        model = ddp.wrap(module, env, self.device)
        return torch.compile(model) if cfg.compile else model

    def start(self, data: TrainingData, env: ddp.DistEnv, output: str | os.PathLike) -> None:
        """Make the augmentation, the window loader and the log folder."""
        from geounet.training.augment import Augmenter, parse_augment
        from geounet.training.windows import StepSampler, WindowDataset, make_loader

        cfg = self.config
        self._augmenter = Augmenter(parse_augment(cfg.augment))
        self._dataset = WindowDataset(data.scenes, data.scaler, data.spec.fill,
                                      cfg.tile_size_px, cfg.seed)
        self._sampler = StepSampler(cfg.batch_size, cfg.steps_per_epoch, env.rank, env.world)
        workers = default_workers() if cfg.workers is None else cfg.workers
        self._loader = make_loader(self._dataset, self._sampler, workers,
                                   pin_memory=self.device.type == "cuda")
        self.dataset_record = data.record()
        out = Path(output)
        self.log_dir = Path(cfg.log_dir) if cfg.log_dir else out.with_name(out.stem + ".train")
        self._main = env.main
        log.info("%d window-reading worker(s); checkpoints and records in %s", workers,
                 self.log_dir)

    def open_log(self, history: list[dict[str, Any]]) -> None:
        """Open the records (rank 0), rewritten from ``history`` on a resume."""
        from geounet.training.records import TrainingLog

        if self._main and self.log_dir is not None:
            self.records = TrainingLog(self.log_dir, self._resumed_records(history),
                                       self.config.tensorboard)

    def _resumed_records(self, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
        import json

        from geounet.training.records import METRICS_NAME

        path = self.log_dir / METRICS_NAME if self.log_dir else None
        if not history or path is None or not path.is_file():
            return []
        done = {h["epoch"] for h in history}
        lines = [json.loads(v) for v in path.read_text().splitlines() if v.strip()]
        return [r for r in lines if r.get("epoch") in done]

    def batches(self, epoch: int) -> Any:
        """The ``(x, y)`` batches of a 1-based epoch (torch tensors, on the CPU)."""
        self._sampler.epoch = epoch
        return self._loader

    def to_device(self, x: Any, y: Any) -> tuple[Any, Any]:
        """A batch on the device (channels-last when asked)."""
        import torch

        xb = torch.as_tensor(x).to(self.device, non_blocking=True)
        yb = torch.as_tensor(y).to(self.device, non_blocking=True)
        if self._channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        return xb, yb

    def augment(self, x: Any, y: Any) -> tuple[Any, Any]:
        """The augmentation (:mod:`geounet.training.augment`) of a batch on the device."""
        return self._augmenter(x, y)

    def autocast(self) -> Any:
        """Mixed precision context (CUDA, ``mixed_precision="auto"``), else a no-op."""
        import torch

        if self._amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=self._amp_dtype)

    def backward_step(self, loss: Any, optimizer: Any) -> None:
        """Backward pass and optimiser step (through the gradient scaler for float16)."""
        if self._scaler is None:
            loss.backward()
            optimizer.step()
            return
        self._scaler.scale(loss).backward()
        self._scaler.step(optimizer)
        self._scaler.update()

    def freeze_for_epoch(self, epoch: int) -> None:
        """Freeze the encoder for the first ``freeze_encoder_epochs`` epochs, then thaw it."""
        n = self.config.freeze_encoder_epochs
        if not n:
            return
        from geounet.training.finetune import set_encoder_trainable

        frozen = epoch <= n
        if frozen != self._frozen:
            changed = set_encoder_trainable(self._module, not frozen)
            log.info("epoch %d: encoder %s (%d weights)", epoch,
                     "frozen" if frozen else "trainable", changed)
            self._frozen = frozen

    def predictor(self) -> Predictor:
        """The model in eval mode as an fp32 predictor on the device (validation)."""
        self._module.eval()
        return Predictor(self._module, self._binary, self.pad_multiple, self.device,
                         precision="fp32", channels_last=False)

    def validation_setup(self, data: TrainingData) -> Any:
        """How validation predicts and scores (``ValidationSetup``)."""
        from geounet.training.validation import ValidationSetup

        cfg = self.config
        return ValidationSetup(data.scaler, data.spec.fill, len(data.classes),
                               data.out_channels, data.binary, cfg.threshold,
                               cfg.tile_size_px, cfg.overlap_px, cfg.batch_size)

    @property
    def module(self) -> Any:
        """The bare module trained (no DDP or compile wrapper)."""
        return self._module

    def record_epoch(self, trainer: Any, seconds: float) -> None:
        """Write the checkpoint and the epoch's records (rank 0)."""
        from geounet.training.checkpoint import CHECKPOINT_NAME, save_checkpoint
        from geounet.training.records import peak_rss_mb

        if self.log_dir is None:
            return
        self.log_dir.mkdir(parents=True, exist_ok=True)
        save_checkpoint(self.log_dir / CHECKPOINT_NAME, trainer.state())
        h = trainer.history[-1]
        steps, tiles = self.config.steps_per_epoch, self.config.steps_per_epoch * \
            self.config.batch_size
        lr = trainer.optimizer.param_groups[0]["lr"]
        if self.records is not None:
            self.records.epoch({**h, "lr": lr, "seconds": round(seconds, 3),
                                "steps_per_s": round(steps / seconds, 4) if seconds else None,
                                "tiles_per_s": round(tiles / seconds, 4) if seconds else None,
                                "rss_mb": peak_rss_mb()})

    def close(self) -> None:
        """Stop the loader's workers and close scenes and records."""
        if self._dataset is not None:
            self._dataset.close()
        self._loader = None
        if self.records is not None:
            self.records.close()
