"""Training checkpoints: everything a killed run needs to continue as if never stopped.

After every epoch :func:`save_checkpoint` writes ``checkpoint.pt`` in the run's
log folder (``torch.save``, to a temporary file renamed on success, so a kill
while writing leaves the previous one): the model's and the optimiser's state,
the learning-rate schedule, torch's random generator state (the augmentation
draws from it), the epoch reached, the history, and the kept (best) weights.
The windows need no state: sample ``i`` depends on ``(seed, i)`` only
(:mod:`geounet.training.windows`). On the CPU with a fixed seed a resumed run
ends with the same model file, byte for byte, as an uninterrupted one
(tested).

A checkpoint records the run's options; :func:`check_resumable` refuses one
made with other options, naming them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from geounet.errors import InputNotFoundError, InvalidOptionError, ModelFileError

CHECKPOINT_NAME = "checkpoint.pt"
"""File name of the checkpoint in a run's log folder."""

NOT_COMPARED = ("device", "workers", "epochs", "log_dir", "tensorboard")
"""Options a resumed run may change (``epochs``: a run may be extended)."""


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write a checkpoint atomically.

    Args:
        path: ``checkpoint.pt`` to write.
        state: Picklable state (tensors, dicts, lists).

    Returns:
        The path written.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint (a file, or a log folder holding ``checkpoint.pt``).

    Args:
        path: The checkpoint or its folder.

    Returns:
        The state :func:`save_checkpoint` wrote.

    Raises:
        InputNotFoundError: if there is no such file.
        ModelFileError: if it is not a geounet checkpoint.
    """
    p = Path(path)
    if p.is_dir():
        p = p / CHECKPOINT_NAME
    if not p.is_file():
        raise InputNotFoundError(f"checkpoint {str(path)!r} does not exist; pass the "
                                 f"{CHECKPOINT_NAME} of the run's log folder (--log-dir)")
    try:
        state = torch.load(p, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ModelFileError(f"cannot read checkpoint {str(p)!r}: {exc}") from exc
    if not isinstance(state, dict) or "epoch" not in state or "model" not in state:
        raise ModelFileError(f"{str(p)!r} is not a geounet training checkpoint")
    return state


def check_resumable(state: dict[str, Any], config: dict[str, Any],
                    dataset: list[dict[str, Any]]) -> None:
    """Refuse a checkpoint made with other options or scenes.

    Args:
        state: The checkpoint.
        config: This run's options (``dataclasses.asdict`` of the config).
        dataset: This run's scenes (as recorded in the model).

    Raises:
        InvalidOptionError: naming the options that differ, or the scenes.
    """
    old = state.get("config", {})
    diff = sorted(k for k in set(old) | set(config)
                  if k not in NOT_COMPARED and old.get(k) != config.get(k))
    if diff:
        shown = ", ".join(f"{k}: {old.get(k)!r} -> {config.get(k)!r}" for k in diff)
        raise InvalidOptionError(
            f"the checkpoint was made with other options ({shown}); resume with the options "
            "of the killed run, or start a new run without --resume")
    if state.get("dataset") != dataset:
        raise InvalidOptionError(
            "the checkpoint was made on other scenes or label files (names or SHA-256 "
            "differ); resume with the same dataset, or start a new run")
    if state["epoch"] > config["epochs"]:
        raise InvalidOptionError(
            f"the checkpoint is at epoch {state['epoch']}, past --epochs {config['epochs']}")
