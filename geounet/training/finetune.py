"""Fine-tuning: starting a training from an existing model (``geounet train --init MODEL``).

:func:`load_init` loads it, :func:`adapt_classes` fits its output layer to the new labels'
classes, :func:`set_encoder_trainable` freezes its encoder (``--freeze-encoder EPOCHS``) and
:func:`init_band_statistics` keeps its input scaling.

The class rule (:func:`adapt_classes`). Classes are matched by name. When the new
class list equals the model's (names and order), the model is left as it is. Otherwise
a new output layer with ``output_channels(len(classes))`` channels replaces the old one,
every other layer keeping its weights: each new class whose name the old model has
takes that class's output row (weights and bias), the others start from a fresh
initialisation. A binary model is read as a softmax model whose background logit is 0
and whose one channel is the foreground logit (``sigmoid(z) == softmax([0, z])[1]``):
so binary to multi-class copies the foreground row and gives the old background class a
zero row, and a new binary model's channel is ``row[foreground] - row[background]``,
copied only when the old model has both names (else fresh).
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from geounet.errors import (
    BandCountError,
    InvalidOptionError,
    ModelFileError,
    UnsupportedFormatError,
)
from geounet.models.foreign_meta import complete_metadata
from geounet.models.foreign_torch import foreign_state_dict, inspect_foreign, module_from_state
from geounet.models.metadata import ModelMetadata, import_optional, output_channels
from geounet.models.modelfile import MODEL_FORMATS, format_of, load_model, resolve_model_path

if TYPE_CHECKING:
    import torch

__all__ = ["HEAD_PATHS", "adapt_classes", "encoder_parameters", "init_band_statistics",
           "load_init", "set_encoder_trainable"]

log = logging.getLogger(__name__)

HEAD_PATHS = ("outc.conv", "segmentation_head.0")
"""The output convolution of geounet's ``unet``, then of smp models (all but DPT)."""
ENCODER_NAMES = (("encoder",), ("inc", "downs"))
"""Attributes that make the encoder: smp models, then geounet's ``unet``."""


def load_init(spec: str | os.PathLike) -> tuple[Any, ModelMetadata]:
    """Load the model a training starts from (``--init``).

    Args:
        spec: A bundled model name (``"buildings-atlanta"``), a geounet ``.safetensors``
            file, or a foreign torch model (smp ``save_pretrained`` folder, torchgeo
            ``.ckpt``, ``.pth``/``.pt`` state dict) with enough metadata to run.

    Returns:
        ``(module, metadata)``: the ``torch.nn.Module`` on CPU, float32, in eval mode
        (call ``.train()`` before training), and the starting model's metadata.

    Raises:
        InputNotFoundError: if a path does not exist.
        UnknownModelError: for an unknown name or an unregistered architecture.
        UnsupportedFormatError: for an ONNX graph (it has no trainable weights).
        ModelFileError: for a corrupt model file; for a foreign model that lacks
            metadata or whose weights do not fit it, the message says to run
            ``geounet import`` first and pass its output to ``--init``.
        MissingDependencyError: if torch is not installed.
    """
    path = resolve_model_path(spec)
    fmt = format_of(path)
    if fmt.runtime != "torch":
        source = path.with_suffix(".safetensors")
        hint = (f"pass {str(source)!r}, the model file it was exported from" if source.is_file()
                else "pass the .safetensors model file it was exported from")
        raise UnsupportedFormatError(
            f"--init {str(spec)!r} is an {fmt.name} model, which cannot be trained "
            f"(it holds a graph, not trainable weights); {hint}")
    import_optional("torch", extra="torch")
    if fmt is MODEL_FORMATS[".safetensors"]:
        loaded = load_model(path)
        return loaded.module, loaded.metadata
    fm = inspect_foreign(path)  # errors that `geounet import` cannot mend either, as they are
    state = foreign_state_dict(path)
    try:
        meta = complete_metadata(fm)
        module = module_from_state(meta, state, path)
    except ModelFileError as exc:
        todo = ("then pass the file it writes to --init" if "geounet import" in str(exc) else
                f"run `geounet import {path} -o MODEL.safetensors` with the options named here "
                "first, then pass MODEL.safetensors to --init")
        raise ModelFileError(f"--init {str(spec)!r} cannot start a training as it is: {exc}; "
                             f"{todo}") from exc
    log.info("training starts from %s (%s, %s)", path, fm.kind, meta.architecture)
    return module, meta


def _find_head(module: Any, arch: str) -> tuple[str, Any]:
    """The dotted name and the ``Conv2d`` of ``module``'s output layer (:data:`HEAD_PATHS`)."""
    from torch import nn

    for name in HEAD_PATHS:
        try:
            head = module.get_submodule(name)
        except AttributeError:
            continue
        if isinstance(head, nn.Conv2d):
            return name, head
    raise InvalidOptionError(
        f"architecture {arch!r} ({type(module).__name__}) has no output layer geounet can "
        f"rebuild for new classes (a Conv2d at {' or '.join(HEAD_PATHS)}); train with the "
        "model's own classes, or train a new model without --init")


def _class_rows(head: Any, classes: list[str], two_logits: bool) -> dict[str, tuple[Any, Any]]:
    """Each class's ``(weight row, bias)`` of a head; a sigmoid model's background is 0."""
    import torch

    weight, bias = head.weight.detach(), head.bias
    bias = torch.zeros_like(weight[:, 0, 0, 0]) if bias is None else bias.detach()
    if len(classes) == 2 and not two_logits:
        return {classes[0]: (torch.zeros_like(weight[0]), torch.zeros_like(bias[0])),
                classes[1]: (weight[0], bias[0])}
    return {name: (weight[i], bias[i]) for i, name in enumerate(classes)}


def _new_head(old: Any, rows: dict[str, tuple[Any, Any]], classes: list[str],
              channels: int) -> tuple[Any, list[str]]:
    """A ``Conv2d`` like ``old`` with ``channels`` outputs, rows copied; and the copied classes."""
    import torch
    from torch import nn

    new = nn.Conv2d(old.in_channels, channels, old.kernel_size, old.stride, old.padding,
                    old.dilation, old.groups, old.bias is not None, old.padding_mode,
                    device=old.weight.device, dtype=old.weight.dtype).train(old.training)
    if channels == 1:  # binary: the foreground's logit against the background's
        background, foreground = classes
        if background not in rows or foreground not in rows:
            return new, []
        pairs = [(0, (rows[foreground][0] - rows[background][0],
                      rows[foreground][1] - rows[background][1]))]
        copied = list(classes)
    else:
        pairs = [(i, rows[name]) for i, name in enumerate(classes) if name in rows]
        copied = [name for name in classes if name in rows]
    with torch.no_grad():
        for i, (weight, bias) in pairs:
            new.weight[i] = weight
            if new.bias is not None:
                new.bias[i] = bias
    return new, copied


def _check_classes(classes: list[str], two_logits: bool, arch: str) -> None:
    """Raise :class:`InvalidOptionError` for a class list :func:`adapt_classes` cannot fit."""
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise InvalidOptionError(f"classes {classes} must be two or more distinct names "
                                 "(background first for a binary model)")
    if two_logits and len(classes) != 2:
        raise InvalidOptionError(
            f"the {arch!r} model runs two softmax logits as one sigmoid channel (two_logits), "
            f"so it can be fine-tuned on two classes only, not {len(classes)} ({classes}); "
            "train a new model without --init")


def adapt_classes(module: Any, meta: ModelMetadata, classes: list[str],
                  arch: str) -> tuple[Any, dict]:
    """Fit a model's output layer to the classes of new training labels, by class name.

    The rule is the module docstring's. Fresh rows get PyTorch's default ``Conv2d``
    initialisation (torch's global generator: seed it first). A ``two_logits`` model
    (2 softmax channels run as one sigmoid channel) keeps its two rows: two classes only.

    Args:
        module: The starting model (:func:`load_init`); its head is replaced in place.
        meta: Its metadata (``meta.classes``: its class names by class id).
        classes: The new class names by class id (two: binary, one sigmoid channel;
            more: one softmax logit each).
        arch: The architecture name (``meta.architecture``), for messages.

    Returns:
        ``(module, report)``: the same module object (unchanged when the classes are
        equal), and ``{"kept": [...], "new": [...], "dropped": [...], "head_rebuilt":
        bool}``: new classes whose rows came from the old model, new classes initialised
        fresh (both in new class-id order), old classes not in ``classes``, and whether
        the output layer was replaced.

    Raises:
        InvalidOptionError: for fewer than two or repeated class names, more than two
            classes for a ``two_logits`` model, or an architecture without a
            recognised output layer (:data:`HEAD_PATHS`).
        ModelFileError: if the head's channels do not match ``meta.classes``.
    """
    old_classes, classes = list(meta.classes), list(classes)
    if classes == old_classes:
        return module, {"kept": classes, "new": [], "dropped": [], "head_rebuilt": False}
    two_logits = bool(meta.arch_args.get("two_logits"))
    _check_classes(classes, two_logits, arch)
    name, head = _find_head(module, arch)
    expected = 2 if two_logits else output_channels(len(old_classes))
    if head.out_channels != expected:
        raise ModelFileError(
            f"the output layer {name} of the {arch!r} model has {head.out_channels} channels "
            f"but its metadata lists {len(old_classes)} classes ({expected} channels)")
    rows = _class_rows(head, old_classes, two_logits)
    channels = 2 if two_logits else output_channels(len(classes))
    new, kept = _new_head(head, rows, classes, channels)
    parent, _, attr = name.rpartition(".")
    setattr(module.get_submodule(parent) if parent else module, attr, new)
    report = {"kept": kept, "new": [c for c in classes if c not in kept],
              "dropped": [c for c in old_classes if c not in classes], "head_rebuilt": True}
    log.info("output layer %s rebuilt for classes %s: %s", name, classes, report)
    return module, report


def _encoder_modules(module: Any) -> list[Any]:
    """The encoder's submodules (:data:`ENCODER_NAMES`)."""
    from torch import nn

    for names in ENCODER_NAMES:
        parts = [getattr(module, n, None) for n in names]
        if all(isinstance(p, nn.Module) for p in parts):
            return parts
    found = " or ".join("+".join(names) for names in ENCODER_NAMES)
    raise InvalidOptionError(
        f"architecture {type(module).__name__!r} has no encoder geounet recognises ({found}), "
        "so --freeze-encoder is not supported for it; train without --freeze-encoder")


def encoder_parameters(module: Any) -> list[torch.nn.Parameter]:
    """The parameters of a model's encoder.

    Args:
        module: An smp model (its ``encoder``) or geounet's ``unet`` (``inc`` and
            ``downs``: the first double convolution and every down-sampling step).

    Returns:
        The encoder's parameters, each once, in module order.

    Raises:
        InvalidOptionError: for an architecture without a recognised encoder
            (``--freeze-encoder`` is not supported for it).
    """
    found = {id(p): p for part in _encoder_modules(module) for p in part.parameters()}
    return list(found.values())


def set_encoder_trainable(module: Any, trainable: bool) -> int:
    """Freeze (``False``) or unfreeze (``True``) a model's encoder.

    Freezing sets ``requires_grad = False`` on the encoder's parameters, nothing else:
    optimisers skip parameters without a gradient, so the weights stay as they are, but
    the encoder's BatchNorm running statistics still follow the new data in train mode.

    Args:
        module: As for :func:`encoder_parameters`.
        trainable: The ``requires_grad`` to set.

    Returns:
        The number of parameter elements (scalars) whose ``requires_grad`` changed
        (0 when the encoder was already in that state).

    Raises:
        InvalidOptionError: as :func:`encoder_parameters`.
    """
    changed = 0
    for p in encoder_parameters(module):
        if p.requires_grad != trainable:
            p.requires_grad_(trainable)
            changed += p.numel()
    return changed


def init_band_statistics(meta: ModelMetadata, new_mean: list[float], new_std: list[float],
                         keep: bool) -> tuple[list[float], list[float]]:
    """The band statistics (input scaling) of a fine-tuned model.

    Args:
        meta: The starting model's metadata.
        new_mean: Per-band mean of the new training data, in scene units (e.g. DN).
        new_std: Per-band standard deviation of the new data, same units.
        keep: Keep the starting model's ``band_mean``/``band_std`` (the input its
            weights were trained on), else take the new data's.

    Returns:
        ``(mean, std)``: lists of floats, one per band, in model input order.

    Raises:
        BandCountError: if the new data's band count differs from the model's.
    """
    if not len(new_mean) == len(new_std) == meta.in_channels:
        raise BandCountError(
            f"the new training data has {len(new_mean)} band means and {len(new_std)} stds "
            f"but the starting model {meta.name!r} takes {meta.in_channels} bands "
            f"({meta.band_names}); select {meta.in_channels} bands with --bands")
    mean, std = (meta.band_mean, meta.band_std) if keep else (new_mean, new_std)
    return [float(v) for v in mean], [float(v) for v in std]
