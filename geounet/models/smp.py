"""segmentation-models-pytorch models: ``smp_unet`` (a ResNet U-Net) and ``smp`` (any).

``smp_unet`` is smp's ``Unet`` with a ResNet encoder; ``smp`` is any smp
architecture and encoder, built by ``smp.create_model`` (imported models:
:mod:`geounet.models.foreign_torch`).

``encoder_weights`` defaults to ``None``: nothing is downloaded at run time.
Pass ``encoder_weights_path`` to initialise the encoder from a local file (a
torchvision/timm ResNet ``state_dict`` in ``.pth``/``.pt`` or ``.safetensors``;
the classifier's ``fc.*`` keys are ignored). ``encoder_weights="imagenet"`` is
passed on to smp, which downloads the weights (needs network access).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from geounet.errors import InputNotFoundError, ModelFileError, UnknownModelError

ENCODERS = ("resnet18", "resnet34", "resnet50")


def _load_state_dict(path: Path) -> dict:
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    obj = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    return obj


def load_encoder_weights(model: Any, path: str | Path) -> None:
    """Load a local ResNet ``state_dict`` into ``model.encoder``.

    Args:
        model: An smp model with an ``encoder`` attribute.
        path: ``.pth``/``.pt`` (loaded with ``weights_only=True``, never
            unpickling code) or ``.safetensors`` file.

    Raises:
        InputNotFoundError: if the file does not exist.
        ModelFileError: if it cannot be read or its keys do not fit the encoder.
    """
    path = Path(path)
    if not path.exists():
        raise InputNotFoundError(
            f"encoder weights file {str(path)!r} does not exist; pass the path of a local "
            "ResNet state_dict (.pth or .safetensors)"
        )
    try:
        sd = _load_state_dict(path)
    except Exception as exc:
        raise ModelFileError(
            f"cannot read encoder weights {str(path)!r}: {exc}; expected a ResNet state_dict"
        ) from exc
    sd = {k.removeprefix("module."): v for k, v in sd.items() if not k.startswith("fc.")}
    import torch

    # smp's encoders override load_state_dict (and return None); call the base method
    missing, unexpected = torch.nn.Module.load_state_dict(model.encoder, sd, strict=False)
    if missing or unexpected:
        raise ModelFileError(
            f"encoder weights {str(path)!r} do not fit the encoder: {len(missing)} missing keys "
            f"(e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]}); "
            "use weights for the same ResNet depth"
        )


def build_smp_unet(
    in_channels: int,
    classes: int,
    encoder_name: str = "resnet34",
    encoder_weights: str | None = None,
    encoder_weights_path: str | None = None,
    decoder_attention_type: str | None = None,
) -> Any:
    """Entry-point factory for the ``smp_unet`` architecture.

    Args:
        in_channels: Input bands.
        classes: Output channels (1 for binary sigmoid, else one per class).
        encoder_name: One of ``resnet18``, ``resnet34``, ``resnet50``.
        encoder_weights: smp's pretrained-weights name (``None``: random init,
            no download; ``"imagenet"`` downloads).
        encoder_weights_path: Local encoder weights file to load instead.
        decoder_attention_type: smp option (``None`` or ``"scse"``).

    Returns:
        ``segmentation_models_pytorch.Unet``; shape ``(b, in_channels, h, w)``
        -> ``(b, classes, h, w)`` logits, ``h`` and ``w`` multiples of 32
        (:attr:`pad_multiple`; the predictor pads).

    Raises:
        UnknownModelError: for an encoder not in :data:`ENCODERS`.
    """
    if encoder_name not in ENCODERS:
        raise UnknownModelError(
            f"encoder {encoder_name!r} is not supported: expected one of {', '.join(ENCODERS)}"
        )
    import segmentation_models_pytorch as smp

    model = smp.Unet(
        encoder_name=encoder_name,
        encoder_weights=encoder_weights,
        in_channels=in_channels,
        classes=classes,
        decoder_attention_type=decoder_attention_type,
    )
    if encoder_weights_path:
        load_encoder_weights(model, encoder_weights_path)
    model.pad_multiple = 32
    return model


def _segmentation_logits(two_logits: bool) -> Any:
    """A forward hook that makes an smp model's output the geounet logits.

    Args:
        two_logits: The model has two softmax channels (background, foreground):
            return their difference as the one sigmoid channel geounet runs
            (``sigmoid(l1 - l0) == softmax(l)[1]``).

    Returns:
        ``hook(module, inputs, output) -> (b, k, h, w)`` float32 logits; the
        mask of a ``(mask, label)`` pair (smp's ``aux_params``) is kept.
    """

    def hook(module: Any, inputs: Any, output: Any) -> Any:
        if isinstance(output, (tuple, list)):
            output = output[0]
        if two_logits:
            output = output[:, 1:2] - output[:, 0:1]
        return output

    return hook


def build_smp(
    in_channels: int,
    classes: int,
    arch: str = "unet",
    encoder_name: str = "resnet34",
    encoder_weights: str | None = None,
    two_logits: bool = False,
    **kwargs: Any,
) -> Any:
    """Entry-point factory for the generic ``smp`` architecture (``smp.create_model``).

    Any segmentation-models-pytorch architecture and encoder: the arguments are
    those of smp's ``config.json`` (``save_pretrained``) or of its model classes.

    Args:
        in_channels: Input bands.
        classes: geounet output channels (1 for binary sigmoid, else one per class).
        arch: smp architecture name, any case (``unet``, ``fpn``, ``deeplabv3plus``,
            ``segformer``..., or smp's class name ``Unet``, ``FPN``...).
        encoder_name: smp encoder (``resnet34``, ``efficientnet-b0``, ``mit_b0``...).
        encoder_weights: smp's pretrained-weights name; ``None`` (default) builds
            random weights without a download.
        two_logits: The smp model has two softmax channels that geounet runs as
            one sigmoid channel (``classes`` must then be 1).
        **kwargs: Further smp model arguments (``encoder_depth``,
            ``decoder_channels``...); keys starting with ``_`` are ignored, as smp does.

    Returns:
        The smp model; ``(b, in_channels, h, w)`` -> ``(b, classes, h, w)``
        logits, ``h`` and ``w`` multiples of :attr:`pad_multiple`
        (``2 ** encoder_depth``; the predictor pads).

    Raises:
        UnknownModelError: for an architecture smp does not have.
    """
    import segmentation_models_pytorch as smp

    kwargs = {k: v for k, v in kwargs.items() if not k.startswith("_")}
    known = smp.MODEL_ARCHITECTURES_MAPPING
    if arch.lower() not in known:
        raise UnknownModelError(
            f"smp architecture {arch!r} is unknown to segmentation-models-pytorch "
            f"{smp.__version__}: expected one of {', '.join(sorted(known))}")
    model = smp.create_model(arch.lower(), encoder_name=encoder_name,
                             encoder_weights=encoder_weights, in_channels=in_channels,
                             classes=2 if two_logits else classes, **kwargs)
    if two_logits or kwargs.get("aux_params"):
        model.register_forward_hook(_segmentation_logits(two_logits))
    model.pad_multiple = 2 ** int(kwargs.get("encoder_depth", 5))
    return model
