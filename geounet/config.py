"""Typed, frozen option objects for each pipeline stage.

Units are part of the field names: ``_px`` is pixels of the grid the model
sees (the scene's, or the model-GSD grid when :class:`ResampleConfig` resamples
it), ``_m`` metres on the ground, ``_m2`` square metres. Each object checks itself on
construction (as rasterio's ``Window`` does) and raises a subclass of
:class:`~geounet.errors.GeounetError` naming the bad value.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from geounet.errors import DeviceError, InvalidOptionError, TilingError

RUNTIME_NAMES = ("auto", "fastest", "torch", "onnxruntime", "openvino")
"""Values of :attr:`PredictConfig.runtime`."""

_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")


@dataclass(frozen=True)
class TilingConfig:
    """How a scene is cut into tiles.

    Attributes:
        tile_size_px: Edge of a square tile in scene pixels. ``None`` takes the
            model's recommended tile size.
        overlap_px: Pixels shared by neighbouring tiles (stride is
            ``tile_size_px - overlap_px``). ``None`` takes the model's value.

    Raises:
        TilingError: if ``tile_size_px < 16`` or ``overlap_px`` is negative or
            not smaller than ``tile_size_px``.
    """

    tile_size_px: int | None = None
    overlap_px: int | None = None

    def __post_init__(self) -> None:
        if self.tile_size_px is not None and self.tile_size_px < 16:
            raise TilingError(
                f"tile size {self.tile_size_px} px is too small: expected at least 16 px "
                "(typical values are 256-1024); pass a larger --tile-size"
            )
        if self.overlap_px is not None and self.overlap_px < 0:
            raise TilingError(
                f"overlap {self.overlap_px} px is negative: expected 0 or more pixels; "
                "pass --overlap 0 or larger"
            )
        if (
            self.tile_size_px is not None
            and self.overlap_px is not None
            and self.overlap_px >= self.tile_size_px
        ):
            raise TilingError(
                f"overlap {self.overlap_px} px must be smaller than the tile size "
                f"{self.tile_size_px} px (the stride would be "
                f"{self.tile_size_px - self.overlap_px} px); pass a smaller --overlap, "
                f"e.g. {self.tile_size_px // 8}"
            )

    def resolve(self, default_tile_px: int, default_overlap_px: int) -> tuple[int, int]:
        """Fill unset values from the model's recommendation.

        Args:
            default_tile_px: The model's recommended tile size in pixels.
            default_overlap_px: The model's recommended overlap in pixels.

        Returns:
            ``(tile_size_px, overlap_px)``, checked again as a pair.

        Raises:
            TilingError: if the combination is invalid.
        """
        tile = self.tile_size_px if self.tile_size_px is not None else default_tile_px
        overlap = self.overlap_px if self.overlap_px is not None else default_overlap_px
        if self.overlap_px is None and overlap >= tile:
            overlap = tile // 8
        TilingConfig(tile, overlap)
        return tile, overlap


@dataclass(frozen=True)
class PredictConfig:
    """How tiles go through the model.

    Attributes:
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``,
            ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
        batch_size: Tiles per forward pass (>= 1).
        precision: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"``: the
            ``torch.autocast`` dtype. ``auto`` is fp16 on CUDA and the
            measured-faster choice on CPU (see :func:`geounet.pipeline.predictors.auto_precision`).
        channels_last: Run the model in ``torch.channels_last`` memory format;
            ``None`` chooses by device (see :func:`geounet.pipeline.predictors.auto_channels_last`).
        prefetch: Batches read and scaled ahead on a background thread, so
            reading overlaps the model (0: read on the calling thread).
        runtime: What runs the model: ``"auto"`` (see
            :func:`geounet.pipeline.predictors.choose_runtime`: torch when it is
            installed, else onnxruntime), ``"fastest"`` (each installed runtime
            timed once per model and machine, the winner cached:
            :mod:`geounet.pipeline.calibrate`), ``"torch"``,
            ``"onnxruntime"`` or ``"openvino"`` (ONNX runtimes run an ONNX
            export of a ``.safetensors`` model, made once and cached).
        tta: Test-time augmentation: ``"none"``, ``"flips"`` (the tile, and
            flipped left-right and up-down: 3 passes) or ``"d4"`` (the 8
            rotations and reflections of the square: 8 passes); the
            probabilities are averaged before stitching.

    Raises:
        DeviceError: if ``device`` is not one of the forms above.
        TilingError: if ``batch_size < 1`` or ``prefetch < 0``.
        InvalidOptionError: for an unknown precision, runtime or test-time augmentation.
    """

    device: str = "auto"
    batch_size: int = 4
    precision: str = "auto"
    channels_last: bool | None = None
    prefetch: int = 2
    tta: str = "none"
    runtime: str = "auto"

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIME_NAMES:
            raise InvalidOptionError(
                f"runtime {self.runtime!r} is not understood: expected one of "
                f"{', '.join(RUNTIME_NAMES)}; pass e.g. --runtime onnxruntime"
            )
        if self.tta not in ("none", "flips", "d4"):
            raise InvalidOptionError(
                f"test-time augmentation {self.tta!r} is not understood: expected none, flips "
                "or d4"
            )
        if not _DEVICE_RE.match(self.device):
            raise DeviceError(
                f"device {self.device!r} is not understood: expected auto, cpu, cuda, "
                "cuda:N or mps; pass e.g. --device cpu"
            )
        if self.batch_size < 1:
            raise TilingError(
                f"batch size {self.batch_size} must be 1 or more; pass e.g. --batch-size 4"
            )
        if self.prefetch < 0:
            raise TilingError(f"prefetch {self.prefetch} must be 0 or more")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise InvalidOptionError(
                f"precision {self.precision!r} is not understood: expected auto, fp32, bf16 "
                "or fp16"
            )


@dataclass(frozen=True)
class VectorizeConfig:
    """How the class raster becomes polygons.

    Attributes:
        min_area_m2: Drop polygons smaller than this many square metres
            (measured in a local UTM CRS for geographic scenes).
        simplify_m: Douglas-Peucker tolerance in metres (0 = none). Topology
            of each polygon is preserved.
        connectivity: 4 or 8, pixel connectivity used by
            ``rasterio.features.shapes``.
        sieve_m2: Minimum mapping unit in square metres: regions of one class
            smaller than this take the class of their largest neighbouring
            region, in the class raster and the polygons (GDAL's sieve filter,
            :mod:`geounet.sieve`; pixels are ``GSD**2`` square metres). 0 = off.
        split_touching: Split footprints of touching buildings that were
            segmented as one region (watershed on the distance transform;
            :func:`geounet.footprints.split_touching`).
        split_h_m: How far, in metres, the distance transform must rise from
            the neck between two buildings to each centre for a split.
        fill_holes_m2: Fill holes smaller than this many square metres (0 =
            keep every hole).
        regularize: Give footprints right angles aligned with each building's
            dominant orientation (:func:`geounet.footprints.regularize`).
        regularize_tolerance_m: Simplification tolerance of the regulariser
            in metres.
        regularize_45: Also allow 45-degree edges.
        regularize_max_area_change: Keep the raw polygon where the regularised
            one changes the area by more than this fraction ...
        regularize_min_iou: ... or overlaps the raw one with an IoU below this.

        The order is: sieve (on the class raster), then per polygon: fill
        holes, split, minimum area, simplify or regularise, minimum area again.

    Raises:
        InvalidOptionError: for negative values or a connectivity other than 4/8.
    """

    min_area_m2: float = 0.0
    simplify_m: float = 0.0
    connectivity: int = 4
    sieve_m2: float = 0.0
    split_touching: bool = False
    split_h_m: float = 1.0
    fill_holes_m2: float = 0.0
    regularize: bool = False
    regularize_tolerance_m: float = 1.0
    regularize_45: bool = False
    regularize_max_area_change: float = 0.2
    regularize_min_iou: float = 0.7

    def __post_init__(self) -> None:
        for name in ("sieve_m2", "split_h_m", "fill_holes_m2",
                     "regularize_tolerance_m", "regularize_max_area_change"):
            value = getattr(self, name)
            if not value >= 0 or (math.isinf(value) and name != "fill_holes_m2"):
                raise InvalidOptionError(
                    f"{name.replace('_', ' ')} {value} is not a finite number of 0 or more"
                    + (" (inf fills every hole)" if name == "fill_holes_m2" else "")
                )
        if self.split_touching and self.split_h_m <= 0:
            raise InvalidOptionError(
                f"split height {self.split_h_m} m must be positive for --split-touching; pass "
                "e.g. --split-h 1.0"
            )
        if self.regularize_tolerance_m <= 0:
            raise InvalidOptionError(
                f"regularize tolerance {self.regularize_tolerance_m} m must be positive, e.g. "
                "--regularize-tolerance 1.0"
            )
        if not 0 <= self.regularize_min_iou <= 1:
            raise InvalidOptionError(
                f"regularize min IoU {self.regularize_min_iou} is outside 0..1"
            )
        if not self.min_area_m2 >= 0:
            raise InvalidOptionError(
                f"min area {self.min_area_m2} m2 is negative or not a number: expected 0 or "
                "more square metres"
            )
        if not 0 <= self.simplify_m < math.inf:
            raise InvalidOptionError(
                f"simplify tolerance {self.simplify_m} m is negative or not finite: expected "
                "0 or more metres"
            )
        if self.connectivity not in (4, 8):
            raise InvalidOptionError(f"connectivity {self.connectivity} must be 4 or 8")


@dataclass(frozen=True)
class OutputConfig:
    """Where results go and how rasters are encoded.

    Attributes:
        prob_dtype: ``"uint8"`` (probability scaled to 0-255, nodata as an
            internal mask) or ``"float32"`` (0-1, nodata NaN).
        overwrite: Replace existing outputs instead of refusing.
        cog: Write the rasters as Cloud Optimized GeoTIFFs (GDAL's COG
            driver) instead of tiled GeoTIFFs with internal overviews.
    """

    prob_dtype: str = "uint8"
    overwrite: bool = False
    cog: bool = False

    def __post_init__(self) -> None:
        if self.prob_dtype not in ("uint8", "float32"):
            raise InvalidOptionError(
                f"probability dtype {self.prob_dtype!r} is not supported: expected uint8 or float32"
            )


RESAMPLE_MODES = ("auto", "off")
"""Values of :attr:`ResampleConfig.mode`."""

OUTPUT_GRIDS = ("scene", "model")
"""Values of :attr:`ResampleConfig.output_grid`."""


@dataclass(frozen=True)
class ResampleConfig:
    """Whether the model sees the scene at its own ground resolution.

    Attributes:
        mode: ``"auto"``: when the scene's GSD (metres per pixel, the mean of
            the x and y sizes; geographic CRSs measured on the ground) differs
            from the model's ``gsd_m`` by more than ``tolerance``, the scene is
            read through a rasterio ``WarpedVRT`` on a grid of the model's GSD
            (same CRS, same origin) and every stage runs on that grid;
            ``"off"``: the scene is read as it is (a warning is logged when
            the GSDs differ). Models without ``gsd_m`` are never resampled.
        tolerance: Largest relative difference ``|scene / model - 1|`` of the
            two GSDs that is left alone (0.1 = 10 %).
        output_grid: ``"scene"``: the class and probability rasters (and
            ``keep_arrays``) come back on the scene's own grid; ``"model"``:
            they stay on the model-GSD grid the run predicted on. Polygons are
            georeferenced either way (areas in square metres do not depend on it).

    Raises:
        InvalidOptionError: for an unknown mode or output grid, or a negative
            or non-finite tolerance.
    """

    mode: str = "auto"
    tolerance: float = 0.1
    output_grid: str = "scene"

    def __post_init__(self) -> None:
        if self.mode not in RESAMPLE_MODES:
            raise InvalidOptionError(
                f"resample mode {self.mode!r} is not understood: expected auto or off; pass "
                "e.g. --resample off"
            )
        if self.output_grid not in OUTPUT_GRIDS:
            raise InvalidOptionError(
                f"output grid {self.output_grid!r} is not understood: expected scene or model; "
                "pass e.g. --output-grid model"
            )
        if not 0 <= self.tolerance < math.inf:
            raise InvalidOptionError(
                f"resample tolerance {self.tolerance} is not a finite fraction of 0 or more; "
                "pass e.g. 0.1 (10 %)"
            )


@dataclass(frozen=True)
class RunOptions:
    """The options of one run, each stage's config object in one place.

    Attributes:
        bands: 1-based band indexes in model input order (``None``: the model's).
        tiling: Tile size and overlap in pixels (unset: the model's).
        predict: Device, batch size, precision, prefetching, TTA.
        vectorize: Minimum area, simplification, sieve, footprint options.
        outputs: Probability dtype, overwrite, COG.
        threshold: Probability threshold of a binary model (``None``: the model's).
        keep_footprints: Collect the polygons in memory (``None``: only when
            there is no vector output).
        keep_arrays: Collect the probability and class rasters in memory.
        resample: Ground resolution: read the scene at the model's GSD, and on
            which grid the rasters come back.

    Raises:
        InvalidOptionError: for a threshold outside 0..1.
    """

    bands: list[int] | None = None
    tiling: TilingConfig = TilingConfig()
    predict: PredictConfig = PredictConfig()
    vectorize: VectorizeConfig = VectorizeConfig()
    outputs: OutputConfig = OutputConfig()
    threshold: float | None = None
    keep_footprints: bool | None = None
    keep_arrays: bool = False
    resample: ResampleConfig = ResampleConfig()

    def __post_init__(self) -> None:
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise InvalidOptionError(
                f"threshold {self.threshold} is outside 0..1; pass e.g. --threshold 0.5")
