"""Registry of model architectures, extended through entry points.

An architecture is a factory ``f(in_channels, classes, **arch_args) -> nn.Module``
registered in the ``geounet.models`` entry-point group, in the style of
segmentation-models-pytorch's ``create_model``. geounet's own ``unet`` and
``smp_unet`` and the generic ``smp`` (any segmentation-models-pytorch
architecture) register through the same group in its ``pyproject.toml``. An entry
point is imported only when its architecture is built.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from geounet.errors import MissingDependencyError, ModelFileError, UnknownModelError
from geounet.models.metadata import installed

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "geounet.models"

# Used when geounet runs from a source tree that was never installed (no entry
# points); the installed metadata declares the same names.
_BUILTIN = {
    "unet": "geounet.models.unet:build_unet",
    "smp_unet": "geounet.models.smp:build_smp_unet",
    "smp": "geounet.models.smp:build_smp",
}

WEIGHTS_DIR = Path(__file__).with_name("weights")
DEFAULT_MODEL = "buildings-atlanta"


@dataclass(frozen=True)
class Architecture:
    """A registered architecture.

    Attributes:
        name: Entry-point name (the ``architecture`` field of model files).
        target: ``"module:function"`` of the factory.
        package: Distribution that provides it (``"geounet"`` for built-ins).
    """

    name: str
    target: str
    package: str


def architectures() -> dict[str, Architecture]:
    """Every registered architecture, by name, without importing any of them.

    Returns:
        Built-ins (``unet``, ``smp_unet``, ``smp``) and entry points of
        :data:`ENTRY_POINT_GROUP`; an entry point overrides a built-in of its name.
    """
    found = {
        name: Architecture(name, target, "geounet") for name, target in _BUILTIN.items()
    }
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        pkg = dist.metadata["Name"] if dist is not None else "?"
        found[ep.name] = Architecture(ep.name, ep.value, pkg)
    return found


def get_factory(name: str) -> Callable[..., Any]:
    """Import and return the factory of architecture ``name``.

    Args:
        name: Registered architecture name.

    Returns:
        The factory ``f(in_channels, classes, **arch_args) -> nn.Module``.

    Raises:
        UnknownModelError: if no architecture has that name, or its entry point
            fails to import (the message names the entry point and package).
    """
    archs = architectures()
    if name not in archs:
        raise UnknownModelError(
            f"architecture {name!r} is not registered: expected one of "
            f"{', '.join(sorted(archs))}; install the package that provides it"
        )
    arch = archs[name]
    module, _, attr = arch.target.partition(":")
    try:
        obj: Any = import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except Exception as exc:
        raise UnknownModelError(
            f"architecture {name!r} (entry point {arch.target!r} from package "
            f"{arch.package!r}) failed to load: {exc}"
        ) from exc
    return obj


def build_model(architecture: str, in_channels: int, classes: int, **arch_args: Any) -> Any:
    """Build an untrained model of a registered architecture.

    Args:
        architecture: Registered name, e.g. ``"unet"`` or ``"smp_unet"``.
        in_channels: Input bands.
        classes: Output channels (1 for binary, else the number of classes).
        **arch_args: Architecture options (``base_channels``, ``encoder_name``...).

    Returns:
        A ``torch.nn.Module`` mapping ``(b, in_channels, h, w)`` to
        ``(b, classes, h, w)`` logits, with a ``pad_multiple`` attribute.

    Raises:
        UnknownModelError: for an unknown architecture.
        ModelFileError: for arguments the factory rejects.
    """
    if not installed("torch"):
        raise MissingDependencyError(
            f"architecture {architecture!r} needs torch, which is not installed; install it "
            "with: pip install 'geounet[torch]'")
    factory = get_factory(architecture)
    try:
        model = factory(in_channels=in_channels, classes=classes, **arch_args)
    except TypeError as exc:
        raise ModelFileError(
            f"architecture {architecture!r} rejected its arguments {arch_args}: {exc}"
        ) from exc
    if not hasattr(model, "pad_multiple"):
        model.pad_multiple = 32
    return model


def bundled_models() -> dict[str, Path]:
    """Model files shipped inside the package, by name (file stem).

    Returns:
        ``.safetensors`` paths under :data:`WEIGHTS_DIR`, sorted by name.
    """
    return {p.stem: p for p in sorted(WEIGHTS_DIR.glob("*.safetensors"))}
