"""segmentation-models-pytorch ``Unet`` with a ResNet encoder.

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
