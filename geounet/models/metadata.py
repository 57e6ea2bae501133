"""Model metadata: what a model needs to run on a scene, and how files store it.

A geounet model file (``.safetensors``) keeps the JSON of :class:`ModelMetadata`
under the key :data:`METADATA_KEY` of its header's ``__metadata__``; an exported
``.onnx`` graph keeps the same JSON under the same key in its ``metadata_props``
(:mod:`geounet.models.onnx_metadata`, with the keys Deepness reads). Nothing
here imports torch or onnx.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import asdict, dataclass, field
from importlib import import_module
from types import ModuleType
from typing import Any

from geounet.constants import DEFAULT_OVERLAP_PX, DEFAULT_THRESHOLD, DEFAULT_TILE_SIZE_PX
from geounet.errors import MissingDependencyError, ModelFileError

FORMAT_NAME = "geounet-model"
FORMAT_VERSION = 2
"""Version 2 added ``background_class`` and ``class_colors`` (version 1 files still load)."""
INPUT_SCALINGS = ("standardize", "geodeep")
"""Values of :attr:`ModelMetadata.input_scaling`."""
METADATA_KEY = "geounet"
"""Key of the metadata JSON in a safetensors ``__metadata__`` and in ONNX ``metadata_props``."""


def output_channels(n_classes: int) -> int:
    """Output channels of a model with ``n_classes`` classes.

    Two classes (background and one foreground) make a binary model with one
    sigmoid channel; more classes get one softmax channel each.

    Args:
        n_classes: Number of classes, background included.

    Returns:
        1 for two classes, else ``n_classes``.
    """
    return 1 if n_classes == 2 else n_classes


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
        pad_multiple: Tile sides are padded to a multiple of this (px).
        training: How the model was trained (command, data, seed, epochs...).
        evaluation: Held-out evaluation figures (pixel IoU, F1...).
        background_class: Class id that is not turned into polygons (0 for
            building models), or ``None`` when every class is a product, as in
            a land-cover model trained on sparse labels.
        class_colors: ``#rrggbb`` colour per class id for the class raster's
            colour table and maps (``None``: :func:`default_colors`).
        input_scaling: How raw pixel values become model input (one of
            :data:`INPUT_SCALINGS`): ``"standardize"``, ``(x - band_mean) /
            band_std`` (geounet's and Deepness's models); ``"geodeep"``,
            GeoDeep's rule for the scene's data type (uint8 ``x / 255``, other
            integers ``x`` over the type's range, floats each tile's min-max,
            clipped to [0, 1]; :mod:`geounet.models.foreign_onnx`), whose
            ``band_std`` of 255 is the uint8 case. Left out of the JSON when
            ``"standardize"``, so files stay readable by geounet 0.1.
        context_px: The model's measured context in pixels: beyond this
            distance from a tile edge its predictions no longer depend on
            where the tile ends (:mod:`geounet.context`). It sets the blending
            margin at interior tile edges; ``None`` when not measured (plain
            feathering). Left out of the JSON when ``None``.
        context: How ``context_px`` was measured (scene, tiles, percentile,
            tolerance, the |dp| profile by distance); left out when empty.
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
    tile_size_px: int = DEFAULT_TILE_SIZE_PX
    overlap_px: int = DEFAULT_OVERLAP_PX
    threshold: float = DEFAULT_THRESHOLD
    pad_multiple: int = 32
    training: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)
    background_class: int | None = 0
    class_colors: list[str] | None = None
    input_scaling: str = "standardize"
    context_px: int | None = None
    context: dict[str, Any] = field(default_factory=dict)

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
        return output_channels(len(self.classes))

    @property
    def product_classes(self) -> list[int]:
        """Class ids that become polygons (all but :attr:`background_class`)."""
        return [i for i in range(len(self.classes)) if i != self.background_class]

    def colors(self) -> list[str]:
        """``#rrggbb`` colour per class id (stored, or :func:`default_colors`).

        Returns:
            One colour string per class id.
        """
        if self.class_colors and len(self.class_colors) == len(self.classes):
            return list(self.class_colors)
        return default_colors(self.classes, self.background_class)

    def to_json(self) -> str:
        """Serialise with the format name and version.

        Returns:
            The JSON text (keys sorted).
        """
        fields_ = asdict(self)
        if fields_["input_scaling"] == "standardize":
            del fields_["input_scaling"]
        for key in ("context_px", "context"):
            if not fields_[key]:
                del fields_[key]
        return json.dumps(
            {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **fields_},
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str, source: str = "<string>") -> ModelMetadata:
        """Parse metadata written by :meth:`to_json`.

        Args:
            text: The JSON text.
            source: Where it came from (a file name), for error messages.

        Returns:
            The checked metadata.

        Raises:
            ModelFileError: if it is not geounet metadata, it is newer than this
                geounet reads, or fields are missing or inconsistent.
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
        _legacy_arch_args(raw)
        try:
            meta = cls(**raw)
        except TypeError as exc:
            raise ModelFileError(f"model file {source!r} has incomplete metadata: {exc}") from exc
        check_metadata(meta, source)
        return meta


def _legacy_arch_args(raw: dict[str, Any]) -> None:
    """Give files written before an architecture option existed its old value.

    geounet 0.1's ``unet`` upsampled with ``align_corners=True`` and recorded
    nothing; such files keep loading with the behaviour they were trained with.
    """
    args = raw.get("arch_args")
    if (raw.get("architecture") == "unet" and isinstance(args, dict)
            and args.get("bilinear", True) and "align_corners" not in args):
        raw["arch_args"] = {**args, "align_corners": True}


def check_metadata(meta: ModelMetadata, source: str = "<string>") -> None:
    """Check that bands, band statistics and classes of ``meta`` agree.

    Args:
        meta: Parsed metadata.
        source: Where it came from (a file name), for error messages.

    Raises:
        ModelFileError: for no bands, band lists of different lengths, fewer
            than two classes, a background class that is not a class id or an
            unknown input scaling.
    """
    n = len(meta.bands)
    if not (len(meta.band_mean) == len(meta.band_std) == len(meta.band_names) == n) or n == 0:
        raise ModelFileError(
            f"model file {source!r} has {n} bands but {len(meta.band_mean)} means, "
            f"{len(meta.band_std)} stds and {len(meta.band_names)} names"
        )
    if len(meta.classes) < 2:
        raise ModelFileError(f"model file {source!r} lists {len(meta.classes)} classes; need >= 2")
    if meta.background_class is not None and not 0 <= meta.background_class < len(meta.classes):
        raise ModelFileError(
            f"model file {source!r} has background class {meta.background_class!r}, not "
            f"one of its {len(meta.classes)} class ids"
        )
    if meta.input_scaling not in INPUT_SCALINGS:
        raise ModelFileError(
            f"model file {source!r} has input scaling {meta.input_scaling!r}, expected one of "
            f"{', '.join(INPUT_SCALINGS)}; upgrade geounet or re-export the model"
        )


# Colours that GIS users know for common class names: the NLCD 2019 legend
# (www.mrlc.gov/data/legends/national-land-cover-database-class-legend-and-description)
# for land cover, and red footprints on no background for buildings.
NAMED_COLORS = {
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
"""``#rrggbb`` colour by lower-case class name."""
PALETTE = ["#e69f00", "#56b4e9", "#009e73", "#f0e442", "#0072b2", "#d55e00", "#cc79a7",
           "#999999"]
"""Okabe and Ito (2008) colour-blind-safe palette, cycled for other class names."""


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
        elif key in NAMED_COLORS:
            out.append(NAMED_COLORS[key])
        else:
            out.append(PALETTE[k % len(PALETTE)])
            k += 1
    return out


def installed(module: str) -> bool:
    """Whether a package can be imported, without importing it.

    Args:
        module: Top-level module name (``"torch"``, ``"onnxruntime"``...).

    Returns:
        True if it is installed.
    """
    return importlib.util.find_spec(module) is not None


def import_optional(module: str, extra: str = "onnx") -> ModuleType:
    """Import an optional dependency, or say which extra installs it.

    Args:
        module: Module name (``"onnx"``, ``"onnxruntime"``).
        extra: The ``geounet[extra]`` that installs it.

    Returns:
        The imported module.

    Raises:
        MissingDependencyError: if it is not installed.
    """
    try:
        return import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{module} is not installed; install it with: pip install 'geounet[{extra}]'"
        ) from exc
