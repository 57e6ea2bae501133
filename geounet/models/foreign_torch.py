"""Torch checkpoints made by other tools, read without ever unpickling code.

Three kinds of source are recognised (:func:`inspect_foreign`):

* a segmentation-models-pytorch ``save_pretrained`` folder: ``config.json``
  (``_model_class`` and the model's arguments) and ``model.safetensors`` (or the
  older ``pytorch_model.bin``); run by the generic ``smp`` architecture;
* a torchgeo ``SemanticSegmentationTask`` checkpoint (``.ckpt``, a Lightning
  checkpoint): ``hyper_parameters`` ``model``/``backbone``/``in_channels``/
  ``num_classes`` (or torchgeo 0.3's ``segmentation_model``/``encoder_name``),
  weights under ``state_dict`` with the prefix ``model.``;
* a plain ``state_dict`` (``.pth``/``.pt``) whose architecture is given by the user.

Each file is read with ``torch.load(weights_only=True)`` (or safetensors): a
checkpoint that needs code to load is refused (:func:`safe_torch_load`). What a
source lacks (band statistics above all) comes from the user
(:func:`~geounet.models.foreign_meta.complete_metadata`) or from a sidecar
``geounet.json`` (:func:`sidecar_path`).
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geounet.errors import InputNotFoundError, ModelFileError, UnknownModelError
from geounet.models.metadata import ModelMetadata
from geounet.models.registry import architectures, build_model

log = logging.getLogger(__name__)

SMP_FOLDER = "smp save_pretrained folder"
TORCHGEO = "torchgeo checkpoint"
STATE_DICT = "torch state dict"

TORCHGEO_MODELS = {"unet": "unet", "deeplabv3+": "deeplabv3plus", "upernet": "upernet",
                   "segformer": "segformer", "dpt": "dpt", "unet++": "unetplusplus",
                   "fpn": "fpn", "pspnet": "pspnet", "linknet": "linknet", "manet": "manet",
                   "pan": "pan", "deeplabv3": "deeplabv3"}
"""torchgeo ``model`` hyper-parameter -> smp architecture (torchgeo builds these with smp)."""

_LOGIT_ACTIVATIONS = (None, "identity", "sigmoid", "softmax", "softmax2d")
"""smp ``activation`` values geounet can drop: it applies the sigmoid or softmax itself."""


@dataclass
class ForeignModel:
    """What one foreign source says about itself.

    Attributes:
        path: The source (a folder or a file).
        kind: :data:`SMP_FOLDER`, :data:`TORCHGEO` or :data:`STATE_DICT`.
        architecture: Registered geounet architecture (``"smp"``), or ``None``
            when the source does not say (a plain state dict).
        arch_args: Factory arguments (besides ``in_channels`` and ``classes``).
        in_channels: Input bands the weights expect, or ``None`` if unknown.
        out_channels: geounet output channels (1 for a binary model), or ``None``.
        known: :class:`ModelMetadata` fields the source (or its sidecar) carries.
        origin: JSON-able facts about the source recorded in the model file
            (format, hyper-parameters, model-card licence).
    """

    path: Path
    kind: str
    architecture: str | None = None
    arch_args: dict[str, Any] = field(default_factory=dict)
    in_channels: int | None = None
    out_channels: int | None = None
    known: dict[str, Any] = field(default_factory=dict)
    origin: dict[str, Any] = field(default_factory=dict)


def is_foreign_folder(path: Path) -> bool:
    """Whether ``path`` is an smp ``save_pretrained`` folder (it has ``config.json``)."""
    return path.is_dir() and (path / "config.json").is_file()


def sidecar_path(path: Path) -> Path:
    """Where the optional geounet metadata of a foreign source lives.

    Args:
        path: The source.

    Returns:
        ``FOLDER/geounet.json`` for a folder, ``NAME.geounet.json`` beside a file
        (``model.ckpt`` -> ``model.geounet.json``). The JSON object holds any
        :class:`ModelMetadata` fields (``band_mean``, ``band_std``, ``classes``...).
    """
    return path / "geounet.json" if path.is_dir() else path.with_suffix(".geounet.json")


def _read_sidecar(path: Path) -> dict[str, Any]:
    side = sidecar_path(path)
    if not side.is_file():
        return {}
    from dataclasses import fields

    try:
        raw = json.loads(side.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"cannot read {str(side)!r} ({exc}); expected a JSON object of "
                             "geounet metadata fields, e.g. {\"band_mean\": [...]}") from exc
    known = {f.name for f in fields(ModelMetadata)}
    if not isinstance(raw, dict) or set(raw) - known:
        bad = sorted(set(raw) - known) if isinstance(raw, dict) else raw
        raise ModelFileError(f"{str(side)!r} has unknown metadata field(s) {bad}; "
                             f"expected some of {sorted(known)}")
    log.info("geounet metadata for %s from %s: %s", path, side, ", ".join(sorted(raw)))
    return raw


def safe_torch_load(path: Path) -> Any:
    """``torch.load(path, weights_only=True)`` on CPU; a pickle that needs code is refused.

    Args:
        path: A ``.pth``/``.pt``/``.ckpt``/``.bin`` file.

    Returns:
        The loaded object (tensors, dicts, lists, numbers, strings).

    Raises:
        ModelFileError: if the file needs code to unpickle (a whole pickled
            module, a class in the hyper-parameters) or is not a torch file.
    """
    import pickle

    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        if found is None:  # not a pickle of tensors at all
            detail = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", str(exc))
            raise ModelFileError(
                f"{str(path)!r} is not a readable torch checkpoint "
                f"({detail.group(1).strip() if detail else type(exc).__name__}); "
                "expected a .pth/.pt state dict or a .ckpt") from None
        what = f"the class {found.group(1)}"
        raise ModelFileError(
            f"{str(path)!r} needs {what} to load, and geounet never runs code from a "
            "checkpoint (torch.load weights_only=True); save the weights alone with "
            f"torch.save(model.state_dict(), {path.name!r}) and import that") from None
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"{str(path)!r} is not a readable torch checkpoint ({first}); "
                             "expected a .pth/.pt state dict or a .ckpt") from None


def _smp_args(config: dict[str, Any], source: Path) -> tuple[dict[str, Any], int, int]:
    """Turn an smp ``config.json`` into (``smp`` factory arguments, in channels, classes)."""
    cfg = dict(config)
    arch = cfg.pop("_model_class", None) or cfg.pop("arch", None)
    if not arch:
        raise ModelFileError(f"{str(source)!r} has no '_model_class' in its config.json; "
                             "expected a folder written by smp's save_pretrained")
    activation = cfg.pop("activation", None)
    if activation not in _LOGIT_ACTIVATIONS:
        raise ModelFileError(
            f"{str(source)!r} ends in activation {activation!r}; geounet runs logits and "
            f"applies sigmoid/softmax itself, so only {_LOGIT_ACTIVATIONS} can be imported")
    in_ch, classes = int(cfg.pop("in_channels", 3)), int(cfg.pop("classes", 1))
    cfg.pop("encoder_weights", None)  # the weights come from the folder, never downloaded
    args = {"arch": str(arch).lower(),
            **{k: v for k, v in cfg.items() if not k.startswith("_")}}
    return args, in_ch, classes


def _with_channels(fm: ForeignModel, model_classes: int) -> ForeignModel:
    """Set geounet's output channels from the model's; two softmax logits become one."""
    if model_classes == 2:
        fm.arch_args["two_logits"] = True
        fm.out_channels = 1
    else:
        fm.out_channels = model_classes
    return fm


def _inspect_folder(path: Path) -> ForeignModel:
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"cannot read {str(path / 'config.json')!r} ({exc}); expected "
                             "the config.json of smp's save_pretrained") from exc
    args, in_ch, classes = _smp_args(config, path)
    origin: dict[str, Any] = {"config": config}
    card = path / "README.md"
    if card.is_file():
        found = re.search(r"^license:\s*(\S+)", card.read_text(errors="replace"), re.M)
        if found:
            origin["model_card_license"] = found.group(1)
    fm = ForeignModel(path, SMP_FOLDER, "smp", args, in_ch, origin=origin)
    return _with_channels(fm, classes)


def _jsonable(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool)) or (
        isinstance(value, (list, tuple)) and all(_jsonable(v) for v in value))


def _inspect_torchgeo(path: Path, hp: dict[str, Any]) -> ForeignModel:
    model = str(hp.get("model", hp.get("segmentation_model", "unet"))).lower()
    if model not in TORCHGEO_MODELS:
        raise ModelFileError(
            f"{str(path)!r} is a torchgeo checkpoint of model {model!r}, which is not an smp "
            f"model geounet can rebuild; expected one of {', '.join(TORCHGEO_MODELS)}")
    task = hp.get("task", "multiclass")
    if task == "multilabel":
        raise ModelFileError(f"{str(path)!r} is a multilabel torchgeo model (overlapping "
                             "labels); geounet runs binary and multiclass models only")
    backbone = hp.get("backbone", hp.get("encoder_name", "resnet50"))
    classes = 1 if task == "binary" else int(hp.get("num_classes", 1))
    origin = {"hyper_parameters": {k: v for k, v in hp.items() if _jsonable(v)}}
    fm = ForeignModel(path, TORCHGEO, "smp",
                      {"arch": TORCHGEO_MODELS[model], "encoder_name": str(backbone)},
                      int(hp.get("in_channels", 3)), origin=origin)
    return _with_channels(fm, classes)


def _is_torchgeo(obj: Any) -> bool:
    hp = obj.get("hyper_parameters") if isinstance(obj, dict) else None
    return isinstance(hp, dict) and isinstance(obj.get("state_dict"), dict) and (
        "backbone" in hp or "segmentation_model" in hp)


def inspect_foreign(path: str | os.PathLike) -> ForeignModel:
    """Recognise a foreign source and read what it says about itself.

    Args:
        path: An smp ``save_pretrained`` folder, a torchgeo ``.ckpt`` or a
            ``.pth``/``.pt`` state dict (a torchgeo checkpoint under any suffix is
            recognised by its ``hyper_parameters``).

    Returns:
        Its :class:`ForeignModel`, with the fields of its sidecar ``geounet.json``
        (if any) in :attr:`ForeignModel.known`.

    Raises:
        InputNotFoundError: if it does not exist.
        ModelFileError: if it needs code to load, is unreadable, or is a kind of
            model geounet cannot rebuild.
    """
    path = Path(path)
    if is_foreign_folder(path):
        fm = _inspect_folder(path)
    elif path.is_file():
        obj = safe_torch_load(path)
        if _is_torchgeo(obj):
            fm = _inspect_torchgeo(path, obj["hyper_parameters"])
        else:
            fm = ForeignModel(path, STATE_DICT)
    else:
        raise InputNotFoundError(
            f"model {str(path)!r} does not exist; expected an smp save_pretrained folder "
            "(with config.json), a .ckpt or a .pth/.pt file")
    fm.known = _read_sidecar(path)
    fm.origin["format"] = fm.kind
    return fm


def _tensors(obj: Any) -> dict[str, Any] | None:
    """``obj`` as a flat ``{name: tensor}`` dict, or ``None`` if it is not one."""
    import torch

    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    return None


def _strip(state: dict[str, Any], prefix: str) -> dict[str, Any]:
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}
    return state


def foreign_state_dict(path: str | os.PathLike) -> dict[str, Any]:
    """The weights of a foreign source, with names that fit the rebuilt module.

    Args:
        path: As for :func:`inspect_foreign`.

    Returns:
        ``{name: tensor}`` on CPU: smp's own names for a folder, torchgeo's
        ``model.*`` weights without the prefix, a state dict found as is or under
        ``state_dict``/``model``/``model_state_dict`` (``module.`` stripped).

    Raises:
        ModelFileError: if it needs code to load or holds no tensors.
    """
    path = Path(path)
    if path.is_dir():
        if (path / "model.safetensors").is_file():
            from safetensors.torch import load_file

            return load_file(str(path / "model.safetensors"))
        bins = [path / "pytorch_model.bin"]
        if not bins[0].is_file():
            raise ModelFileError(f"{str(path)!r} has config.json but no model.safetensors or "
                                 "pytorch_model.bin; save it again with save_pretrained")
        obj = safe_torch_load(bins[0])
    else:
        obj = safe_torch_load(path)
    if _is_torchgeo(obj):
        return {k[len("model."):]: v for k, v in obj["state_dict"].items()
                if k.startswith("model.")}
    for candidate in (obj, *(obj.get(k) for k in ("state_dict", "model", "model_state_dict")
                             if isinstance(obj, dict))):
        state = _tensors(candidate)
        if state is not None:
            return _strip(_strip(state, "module."), "model.")
    raise ModelFileError(f"{str(path)!r} holds no state dict (a dict of tensor names to "
                         "tensors); save one with torch.save(model.state_dict(), path)")


def module_from_state(meta: ModelMetadata, state: dict[str, Any], source: Path) -> Any:
    """Build ``meta``'s architecture and load ``state`` into it (strictly).

    Args:
        meta: The model's metadata.
        state: ``{name: tensor}`` from :func:`foreign_state_dict`.
        source: Where the weights came from, for messages.

    Returns:
        The ``torch.nn.Module`` on CPU in eval mode.

    Raises:
        UnknownModelError: for an unregistered architecture.
        ModelFileError: if the weights do not fit it.
    """
    if meta.architecture not in architectures():
        raise UnknownModelError(
            f"architecture {meta.architecture!r} of {str(source)!r} is not registered "
            f"(have: {', '.join(sorted(architectures()))}); pick one with --arch")
    module = build_model(meta.architecture, meta.in_channels, meta.out_channels,
                         **meta.arch_args)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        raise ModelFileError(
            f"the weights of {str(source)!r} do not fit architecture {meta.architecture!r} "
            f"with {meta.in_channels} bands, {meta.out_channels} output channels and "
            f"arguments {meta.arch_args} ({' '.join(lines[1:3])[:300]}); check --arch, "
            "--arch-arg, --bands and --classes (a 2-channel softmax model run as binary "
            "needs --arch-arg two_logits=true)") from exc
    return module.eval()

