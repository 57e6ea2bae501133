"""The geounet model file: safetensors weights plus JSON metadata.

A model file is a plain ``.safetensors`` file (github.com/huggingface/safetensors):
the ``state_dict`` tensors, and in the header's ``__metadata__`` one key,
``"geounet"``, whose value is the JSON of :class:`ModelMetadata`. Loading
never unpickles code: the architecture is rebuilt from the registry by name
and the tensors are loaded into it.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from geounet.errors import InputNotFoundError, ModelFileError, UnknownModelError
from geounet.models.registry import DEFAULT_MODEL, architectures, build_model, bundled_models

log = logging.getLogger(__name__)

FORMAT_NAME = "geounet-model"
FORMAT_VERSION = 2
"""Version 2 added ``background_class`` and ``class_colors`` (version 1 files still load)."""
METADATA_KEY = "geounet"


@dataclass(frozen=True)
class ModelMetadata:
    """Everything needed to run a model on a scene, stored in the model file.

    Attributes:
        name: Human name of the model.
        architecture: Registered architecture (``unet``, ``smp_unet``...).
        arch_args: Keyword arguments of the architecture factory (besides
            ``in_channels`` and ``classes``).
        bands: 1-based band indexes of the training scenes, in model input order.
        band_names: A name per input band.
        band_mean: Per-band mean of raw pixel values (scene units, e.g. DN).
        band_std: Per-band standard deviation; input is ``(x - mean) / std``.
        classes: Class names by class id. A model with two classes is
            binary (id 0 the background): one output channel with a sigmoid.
            More classes: one logit per class with a softmax.
        gsd_m: Ground sample distance of the training data in metres per pixel.
        tile_size_px: Recommended tile size in pixels.
        overlap_px: Recommended overlap in pixels.
        threshold: Default probability threshold of a binary model.
        pad_multiple: Tile sides are padded to a multiple of this.
        training: How the model was trained (command, data, seed, epochs...).
        evaluation: Held-out evaluation figures (pixel IoU, F1...).
        background_class: Class id that is not turned into polygons (0 for
            building models), or ``None`` when every class is a product, as in
            a land-cover model trained on sparse labels.
        class_colors: ``#rrggbb`` colour per class id for the class raster's
            colour table and maps (``None``: :func:`default_colors`).
    """

    name: str
    architecture: str
    arch_args: dict[str, Any]
    bands: list[int]
    band_names: list[str]
    band_mean: list[float]
    band_std: list[float]
    classes: list[str]
    gsd_m: float | None = None
    tile_size_px: int = 256
    overlap_px: int = 32
    threshold: float = 0.5
    pad_multiple: int = 32
    training: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)
    background_class: int | None = 0
    class_colors: list[str] | None = None

    @property
    def in_channels(self) -> int:
        """Number of input bands."""
        return len(self.bands)

    @property
    def binary(self) -> bool:
        """True for a one-channel sigmoid model (background + one class)."""
        return len(self.classes) == 2

    @property
    def out_channels(self) -> int:
        """Output channels: 1 for binary models, else one per class."""
        return 1 if self.binary else len(self.classes)

    @property
    def product_classes(self) -> list[int]:
        """Class ids that become polygons (all but :attr:`background_class`)."""
        return [i for i in range(len(self.classes)) if i != self.background_class]

    def colors(self) -> list[str]:
        """``#rrggbb`` colour per class id (stored, or :func:`default_colors`)."""
        if self.class_colors and len(self.class_colors) == len(self.classes):
            return list(self.class_colors)
        return default_colors(self.classes, self.background_class)

    def to_json(self) -> str:
        """Serialise with the format name and version."""
        return json.dumps(
            {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **asdict(self)},
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str, source: str = "<string>") -> ModelMetadata:
        """Parse metadata written by :meth:`to_json`.

        Raises:
            ModelFileError: if it is not geounet metadata or fields are missing.
        """
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelFileError(f"model file {source!r} has unreadable metadata: {exc}") from exc
        if raw.get("format") != FORMAT_NAME:
            raise ModelFileError(f"{source!r} is not a geounet model file (no geounet metadata)")
        if raw.get("format_version", 0) > FORMAT_VERSION:
            raise ModelFileError(
                f"model file {source!r} has format version {raw['format_version']}, newer than "
                f"this geounet reads ({FORMAT_VERSION}); upgrade geounet"
            )
        raw.pop("format", None)
        raw.pop("format_version", None)
        try:
            meta = cls(**raw)
        except TypeError as exc:
            raise ModelFileError(f"model file {source!r} has incomplete metadata: {exc}") from exc
        n = len(meta.bands)
        if not (len(meta.band_mean) == len(meta.band_std) == len(meta.band_names) == n) or n == 0:
            raise ModelFileError(
                f"model file {source!r} has {n} bands but {len(meta.band_mean)} means, "
                f"{len(meta.band_std)} stds and {len(meta.band_names)} names"
            )
        if len(meta.classes) < 2:
            raise ModelFileError(f"model file {source!r} lists {len(meta.classes)} classes; need >= 2")
        if meta.background_class is not None and not 0 <= meta.background_class < len(
                meta.classes):
            raise ModelFileError(
                f"model file {source!r} has background class {meta.background_class!r}, not "
                f"one of its {len(meta.classes)} class ids"
            )
        return meta


# Colours that GIS users know for common class names: the NLCD 2019 legend
# (www.mrlc.gov/data/legends/national-land-cover-database-class-legend-and-description)
# for land cover, and red footprints on no background for buildings.
_NAMED_COLORS = {
    "background": "#000000",
    "building": "#e31a1c",
    "developed": "#eb0000",
    "agriculture": "#dcd939",
    "cropland": "#ab6c28",
    "herbaceous": "#dfdfc2",
    "grassland": "#dfdfc2",
    "shrubland": "#ccb879",
    "forest": "#38814e",
    "water": "#5475a8",
    "sediment": "#b3ac9f",
    "barren": "#b3ac9f",
    "wetland": "#c8e6f8",
}
# Okabe and Ito (2008) colour-blind-safe palette for other names.
_PALETTE = ["#e69f00", "#56b4e9", "#009e73", "#f0e442", "#0072b2", "#d55e00", "#cc79a7",
            "#999999"]


def default_colors(classes: list[str], background_class: int | None = 0) -> list[str]:
    """A ``#rrggbb`` colour per class name.

    Known land-cover names take their NLCD legend colour, ``building`` red,
    the background black; other names cycle through the Okabe-Ito palette.

    Args:
        classes: Class names by class id.
        background_class: Id of the background (black), or ``None``.

    Returns:
        One colour string per class.
    """
    out, k = [], 0
    for i, name in enumerate(classes):
        key = name.strip().lower()
        if i == background_class:
            out.append("#000000")
        elif key in _NAMED_COLORS:
            out.append(_NAMED_COLORS[key])
        else:
            out.append(_PALETTE[k % len(_PALETTE)])
            k += 1
    return out


def resolve_model_path(spec: str | os.PathLike | None) -> Path:
    """Turn a ``--model`` value into a model file path.

    Args:
        spec: A path to a ``.safetensors`` file, the name of a bundled model,
            or ``None`` for the default bundled model.

    Raises:
        UnknownModelError: if it is neither an existing file nor a bundled name.
    """
    bundled = bundled_models()
    if spec is None:
        spec = DEFAULT_MODEL
    path = Path(spec)
    if path.is_file():
        return path
    if str(spec) in bundled:
        return bundled[str(spec)]
    if path.suffix or os.sep in str(spec):
        raise InputNotFoundError(
            f"model file {str(spec)!r} does not exist; pass an existing .safetensors file or "
            f"a bundled model name ({', '.join(bundled) or 'none installed'})"
        )
    raise UnknownModelError(
        f"model {str(spec)!r} is neither a file nor a bundled model: expected one of "
        f"{', '.join(bundled) or '(none installed)'} or a path to a .safetensors file"
    )


def read_metadata(path: str | os.PathLike) -> ModelMetadata:
    """Read only the metadata of a model file (no torch needed).

    Raises:
        InputNotFoundError: if the file does not exist.
        ModelFileError: if the file is not a readable geounet safetensors file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"model file {str(path)!r} does not exist")
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise ValueError("file shorter than a safetensors header")
            n = int.from_bytes(head, "little")
            if n <= 0 or n > 100_000_000:
                raise ValueError(f"header length {n} is implausible")
            header = json.loads(fh.read(n))
        text = header.get("__metadata__", {}).get(METADATA_KEY)
    except (ValueError, UnicodeDecodeError, AttributeError) as exc:
        raise ModelFileError(
            f"model file {str(path)!r} is corrupt or not a safetensors file ({exc}); "
            "re-download or re-train it"
        ) from exc
    if text is None:
        raise ModelFileError(
            f"{str(path)!r} is a safetensors file without geounet metadata; only files "
            "written by geounet (geounet train) can be loaded"
        )
    return ModelMetadata.from_json(text, str(path))


def save_model(model, metadata: ModelMetadata, path: str | os.PathLike) -> Path:
    """Write a model file atomically (temporary file, then rename).

    Args:
        model: The ``torch.nn.Module`` whose ``state_dict`` is saved.
        metadata: Its :class:`ModelMetadata`.
        path: Destination ``.safetensors`` path.

    Returns:
        The path written.
    """
    from safetensors.torch import save_file

    from geounet.io.atomic import atomic_path

    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path, overwrite=True) as tmp:
        save_file(tensors, str(tmp), metadata={METADATA_KEY: metadata.to_json()})
    return path


@dataclass
class LoadedModel:
    """A model ready for inference.

    Attributes:
        module: The ``torch.nn.Module`` in eval mode, on CPU until moved;
            ``None`` for an exported ``.onnx`` model (run by onnxruntime).
        metadata: Its :class:`ModelMetadata`.
        path: The file it came from.
    """

    module: Any
    metadata: ModelMetadata
    path: Path


def load_model(spec: str | os.PathLike | None = None) -> LoadedModel:
    """Load a model file or a bundled model.

    Args:
        spec: Path (``.safetensors``, or ``.onnx`` exported by ``geounet
            export``), bundled model name, or ``None`` for the default model
            (``buildings-atlanta``).

    Returns:
        A :class:`LoadedModel` on CPU in eval mode.

    Raises:
        InputNotFoundError: if a given path does not exist.
        UnknownModelError: for an unknown name or an unregistered architecture.
        ModelFileError: if the file is corrupt or its weights do not fit the
            architecture it names.
    """
    path = resolve_model_path(spec)
    if path.suffix.lower() == ".onnx":
        from geounet.export import read_onnx_metadata

        return LoadedModel(None, read_onnx_metadata(path), path)
    meta = read_metadata(path)
    if meta.architecture not in architectures():
        raise UnknownModelError(
            f"model file {str(path)!r} needs architecture {meta.architecture!r}, which is not "
            f"registered (have: {', '.join(sorted(architectures()))}); install its plugin package"
        )
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(
            f"model file {str(path)!r} is corrupt ({exc}); re-download or re-train it"
        ) from exc
    args = dict(meta.arch_args)
    args.pop("encoder_weights", None)  # weights come from the file, never downloaded
    args.pop("encoder_weights_path", None)
    module = build_model(meta.architecture, meta.in_channels, meta.out_channels, **args)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise ModelFileError(
            f"weights in {str(path)!r} do not fit architecture {meta.architecture!r} with "
            f"arguments {meta.arch_args} ({first}); the file is corrupt or for another model"
        ) from exc
    module.eval()
    log.info("loaded model %s (%s) from %s", meta.name, meta.architecture, path)
    return LoadedModel(module, meta, path)


def update_metadata(path: str | os.PathLike, output: str | os.PathLike | None = None,
                    **changes: Any) -> Path:
    """Rewrite a model file with some metadata fields replaced (weights unchanged).

    Used to stamp held-out ``evaluation`` figures into a trained model.

    Args:
        path: Existing model file.
        output: Where to write (default: replace ``path`` atomically).
        **changes: :class:`ModelMetadata` fields and their new values.

    Returns:
        The path written.

    Raises:
        ModelFileError: for an unknown field or an unreadable file.
    """
    from dataclasses import fields, replace

    from safetensors.torch import load_file, save_file

    from geounet.io.atomic import atomic_path

    known = {f.name for f in fields(ModelMetadata)}
    unknown = set(changes) - known
    if unknown:
        raise ModelFileError(f"unknown metadata field(s) {sorted(unknown)}; known: {sorted(known)}")
    meta = replace(read_metadata(path), **changes)
    tensors = load_file(str(path))
    out = Path(output or path)
    with atomic_path(out, overwrite=True) as tmp:
        save_file(tensors, str(tmp), metadata={METADATA_KEY: meta.to_json()})
    return out
