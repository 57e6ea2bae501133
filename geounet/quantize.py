"""Opt-in int8 ONNX graphs: static quantisation calibrated on tiles of a scene.

:func:`quantize_model` takes a model's ONNX graph (an ``.onnx`` file as it is; a
``.safetensors`` model's companion graph or cached export, as the ONNX runtimes
of ``geounet predict`` find it: :func:`geounet.onnx_cache.onnx_graph`), reads
calibration tiles from a scene exactly as ``geounet predict`` reads and scales
them (:class:`~geounet.io.read.Scene`, on the model-GSD grid
:func:`~geounet.pipeline.resample.choose_grid` picks, scaled by
:func:`~geounet.models.foreign_onnx.input_scaler`, padded by
:func:`~geounet.pipeline.runtime_onnx.pad_to`), and runs onnxruntime's
``quantize_static``: QDQ format (QuantizeLinear/DequantizeLinear pairs, which
onnxruntime and OpenVINO both run as int8 kernels), MinMax calibration, uint8
activations and int8 weights (onnxruntime's advice for x86 CPUs), per output
channel by default. The Conv nodes that read the graph input stay fp32:
quantising the standardised bands to 8 bits cost most of the error
(``benchmarks/quantize.py``; docs/performance.md, "Reduced precision").

The result is written atomically and keeps every ``metadata_props`` entry of
the source graph (the Deepness/GeoDeep keys, geounet's
:class:`~geounet.models.metadata.ModelMetadata`), except that the fp32
``evaluation`` figures move into :data:`QUANTIZATION_KEY`, which says how the
graph was quantised and calibrated, and the graph does not record the
``.safetensors`` file it came from (``geounet_source_sha256``), so it is never
taken for that file's fp32 companion. Nothing runs int8 unless it is passed as
``--model OUT.onnx``.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.windows import Window

from geounet import __version__
from geounet.config import ResampleConfig
from geounet.errors import EmptySceneError, InvalidOptionError, ModelFileError, TilingError
from geounet.io.atomic import atomic_path
from geounet.io.checksum import file_sha256
from geounet.io.padding import read_scaled
from geounet.io.read import Scene, gdal_env
from geounet.models.foreign_onnx import fit_output, input_scaler
from geounet.models.metadata import METADATA_KEY, ModelMetadata, import_optional
from geounet.models.modelfile import LoadedModel, as_loaded
from geounet.models.onnx_metadata import (
    SOURCE_KEY,
    onnx_props,
    onnx_source_sha256,
    read_onnx_metadata,
)
from geounet.onnx_cache import onnx_graph
from geounet.pipeline.resample import choose_grid
from geounet.pipeline.runtime_onnx import pad_to
from geounet.regions import parse_region

__all__ = ["QUANTIZATION_KEY", "QuantizeOptions", "calibration_tiles", "quantization_info",
           "quantize_model"]

log = logging.getLogger(__name__)

QUANTIZATION_KEY = "geounet_quantization"
"""``metadata_props`` key of an int8 graph: JSON saying how it was quantised and calibrated."""


@dataclass(frozen=True)
class QuantizeOptions:
    """How a graph is quantised and calibrated.

    Attributes:
        n_tiles: Calibration tiles to draw (>= 1).
        seed: Seed of the tile positions.
        region: Draw tiles inside this part of the scene only
            (:mod:`geounet.regions`, e.g. ``west:0.667``), or ``None``.
        per_channel: int8 weights with one scale per output channel (else
            one per tensor).
        fp32_input_convs: Keep the Conv nodes that read the graph input in
            fp32.
        resample: ``"auto"`` or ``"off"``, as ``geounet predict --resample``:
            calibration tiles are read on the grid the run will read (the
            model's GSD when the scene's differs by more than 10 %).

    Raises:
        InvalidOptionError: for fewer than one tile or an unknown resample mode.
    """

    n_tiles: int = 16
    seed: int = 0
    region: str | None = None
    per_channel: bool = True
    fp32_input_convs: bool = True
    resample: str = "auto"

    def __post_init__(self) -> None:
        if int(self.n_tiles) < 1:
            raise InvalidOptionError(
                f"--tiles {self.n_tiles}: expected at least 1 calibration tile; pass e.g. "
                "--tiles 16")
        ResampleConfig(mode=self.resample)


def _draw_windows(scene: Scene, tile_px: int, options: QuantizeOptions) -> list[Window]:
    """``3 * n_tiles`` seeded tile windows inside the region (tiles may reach past its edge)."""
    if options.region:
        area = parse_region(options.region, scene.width, scene.height, scene.transform)
    else:
        area = Window(0, 0, scene.width, scene.height)
    c0, r0 = int(area.col_off), int(area.row_off)
    c_last = max(c0, c0 + int(area.width) - tile_px)
    r_last = max(r0, r0 + int(area.height) - tile_px)
    rng = np.random.default_rng(options.seed)
    cols = rng.integers(c0, c_last + 1, size=3 * options.n_tiles)
    rows = rng.integers(r0, r_last + 1, size=3 * options.n_tiles)
    return [Window(int(c), int(r), tile_px, tile_px) for c, r in zip(cols, rows, strict=True)]


def calibration_tiles(scene_path: str | os.PathLike, meta: ModelMetadata, tile_px: int,
                      graph_px: int | None = None, bands: list[int] | None = None,
                      options: QuantizeOptions | None = None) -> np.ndarray:
    """Calibration tiles of a scene, read and scaled as ``geounet predict`` reads them.

    The scene is read on the grid a run reads it on (its own, or the model's
    GSD: :func:`~geounet.pipeline.resample.choose_grid` with
    ``options.resample``) and scaled by the run's scaler
    (:func:`~geounet.models.foreign_onnx.input_scaler`: the model's band
    statistics, or GeoDeep's rule). Tile positions are drawn at random
    (seeded) inside that grid or ``options.region`` of it; tiles whose every
    pixel is nodata are skipped and others drawn instead (up to three draws per
    tile asked for).

    Args:
        scene_path: The calibration scene (any raster rasterio opens, with a CRS).
        meta: The model's metadata (bands, band mean and std).
        tile_px: Tile side in pixels, as the run reads them.
        graph_px: The graph's tile side in pixels; tiles are padded to it as
            the ONNX runtimes pad them (default: ``tile_px``).
        bands: 1-based bands in model input order (default: the model's).
        options: Tile count, seed and region.

    Returns:
        ``(n, bands, graph_px, graph_px)`` float32 standardised tiles,
        ``n <= options.n_tiles``.

    Raises:
        InputNotFoundError, NotARasterError, MissingCRSError, BandIndexError,
            BandCountError: for a scene :class:`~geounet.io.read.Scene` refuses.
        RegionError: for a region that cannot be parsed or misses the scene.
        EmptySceneError: if every drawn tile is nodata.
    """
    options = options or QuantizeOptions()
    tiles: list[np.ndarray] = []
    with gdal_env(), Scene(scene_path, bands, default_bands=meta.bands,
                           n_expected=meta.in_channels) as scene:
        grid = choose_grid(scene, meta, ResampleConfig(mode=options.resample))
        if grid is not None:
            scene.use_grid(grid)
        scaler = input_scaler(meta, scene.dataset.dtypes[scene.bands[0] - 1])
        for window in _draw_windows(scene, tile_px, options):
            x, valid = read_scaled(scene, window, scaler)
            if valid.any():
                tiles.append(x)
            if len(tiles) == options.n_tiles:
                break
    if not tiles:
        where = f"region {options.region!r} of " if options.region else ""
        raise EmptySceneError(
            f"every calibration tile drawn from {where}{str(scene_path)!r} is nodata; pass a "
            "scene (or --region) with valid pixels")
    if len(tiles) < options.n_tiles:
        log.warning("only %d of %d calibration tiles hold valid pixels", len(tiles),
                    options.n_tiles)
    return pad_to(np.stack(tiles), graph_px or tile_px)


class _TileFeed:
    """onnxruntime's ``CalibrationDataReader``: one tile per ``get_next`` (a duck type)."""

    def __init__(self, name: str, tiles: np.ndarray) -> None:
        self._items = iter([{name: tiles[i:i + 1]} for i in range(len(tiles))])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._items, None)


def quantization_info(path: str | os.PathLike) -> dict[str, Any] | None:
    """How an ONNX graph was quantised (:data:`QUANTIZATION_KEY`), or ``None`` for fp32.

    Args:
        path: An ``.onnx`` file.

    Returns:
        The JSON object, or ``None``.

    Raises:
        ModelFileError: if the file is not a readable ONNX model.
    """
    raw = onnx_props(path)[0].get(QUANTIZATION_KEY)
    return json.loads(raw) if raw else None


def _input_convs(proto: Any) -> list[str]:
    """Names of the Conv nodes that read a graph input."""
    inputs = {i.name for i in proto.graph.input}
    return [n.name for n in proto.graph.node if n.op_type == "Conv" and set(n.input) & inputs]


def _check(graph: Path, quantized: Path, tiles: np.ndarray,
           meta: ModelMetadata) -> dict[str, float]:
    """Largest |dp| and class agreement of the int8 graph against fp32 on the tiles."""
    ort = import_optional("onnxruntime")
    sessions = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
                for p in (graph, quantized)]
    name = sessions[0].get_inputs()[0].name
    p32, p8 = (fit_output(np.asarray(s.run(None, {name: tiles})[0]), meta.out_channels)
               for s in sessions)
    if meta.binary:
        agree = np.mean((p32 > 0.5) == (p8 > 0.5))
    else:
        agree = np.mean(p32.argmax(1) == p8.argmax(1))
    return {"max_abs_dp": round(float(np.max(np.abs(p32 - p8))), 6),
            "class_agreement": round(float(agree), 6)}


def _quantize_file(graph: Path, tiles: np.ndarray, out: Path,
                   options: QuantizeOptions) -> list[str]:
    """Pre-process and quantise ``graph`` into ``out``; returns the nodes kept in fp32."""
    onnx = import_optional("onnx")
    q = import_optional("onnxruntime.quantization")
    with tempfile.TemporaryDirectory(prefix="geounet-quantize-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        q.quant_pre_process(str(graph), str(pre), skip_symbolic_shape=True)
        proto = onnx.load(str(pre))
        keep = _input_convs(proto) if options.fp32_input_convs else []
        q.quantize_static(
            str(pre), str(out), _TileFeed(proto.graph.input[0].name, tiles),
            quant_format=q.QuantFormat.QDQ, per_channel=options.per_channel,
            activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8,
            calibrate_method=q.CalibrationMethod.MinMax, nodes_to_exclude=keep)
    return keep


def _write_props(path: Path, source: dict[str, str], meta: ModelMetadata,
                 info: dict[str, Any]) -> None:
    """The int8 graph's ``metadata_props``: the source graph's, moved and added as described."""
    onnx = import_optional("onnx")
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    props = {k: v for k, v in source.items() if k != SOURCE_KEY}
    if METADATA_KEY in props:  # a graph read from Deepness keys keeps only those
        props[METADATA_KEY] = replace(meta, evaluation={}).to_json()
    props[QUANTIZATION_KEY] = json.dumps(info)
    for k, v in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(proto, str(path))


def _source_graph(loaded: LoadedModel, tile_size_px: int | None) -> tuple[Path, int]:
    """The fp32 graph to quantise and the run's tile size, refusing int8 and misfit tiles."""
    if loaded.format == "onnx":
        if quantization_info(loaded.path) is not None:
            raise ModelFileError(
                f"{str(loaded.path)!r} is already an int8 graph (it has {QUANTIZATION_KEY}); "
                "quantise the fp32 model (its .safetensors file, bundled name or fp32 .onnx)")
        tile = loaded.metadata.tile_size_px
        if tile_size_px not in (None, tile):
            raise TilingError(
                f"tile size {tile_size_px} px: ONNX model {str(loaded.path)!r} takes tiles of "
                f"{tile} px only; leave out --tile-size, or quantise the .safetensors model")
        return Path(loaded.path), tile
    tile = tile_size_px or loaded.metadata.tile_size_px
    return onnx_graph(loaded, tile), tile


def _info(graph: Path, calibration: str | os.PathLike, meta: ModelMetadata, tiles: np.ndarray,
          tile: int, bands: list[int] | None, options: QuantizeOptions) -> dict[str, Any]:
    """The :data:`QUANTIZATION_KEY` record (``fp32_nodes`` and ``check`` are added after)."""
    ort = import_optional("onnxruntime")
    scene = Path(calibration)
    return {
        "dtype": "int8", "format": "QDQ", "activations": "uint8",
        "weights": "int8 per channel" if options.per_channel else "int8 per tensor",
        "calibration": {"method": "MinMax", "scene": scene.name,
                        "scene_sha256": file_sha256(scene) if scene.is_file() else None,
                        "tiles": len(tiles), "tile_px": tile, "seed": options.seed,
                        "region": options.region, "resample": options.resample,
                        "bands": bands or meta.bands},
        "source_graph_sha256": file_sha256(graph),
        "source_model_sha256": onnx_source_sha256(graph),
        "fp32_evaluation": meta.evaluation,
        "onnxruntime": ort.__version__, "geounet": __version__,
    }


def quantize_model(model: LoadedModel | str | os.PathLike | None,
                   calibration: str | os.PathLike, output: str | os.PathLike,
                   tile_size_px: int | None = None, bands: list[int] | None = None,
                   options: QuantizeOptions | None = None, overwrite: bool = False) -> Path:
    """Write an int8 (QDQ) ONNX graph of a model, calibrated on tiles of a scene.

    Args:
        model: Model file (``.safetensors`` or fp32 ``.onnx``), bundled name,
            ``LoadedModel`` or ``None`` (the default model).
        calibration: Scene to draw calibration tiles from (the model's bands,
            or ``bands``); a scene like those the graph will segment.
        output: ``.onnx`` file to write (atomically).
        tile_size_px: Tile size of the graph in pixels (default: the model's);
            a ``.safetensors`` model is exported for it if its companion graph
            has another (needs torch), an ``.onnx`` model takes its own only.
        bands: 1-based calibration scene bands in model input order.
        options: Tile count, seed, region, per-channel weights, fp32 input
            convs, resampling (:class:`QuantizeOptions`).
        overwrite: Replace an existing ``output``.

    Returns:
        The path written; it runs with ``geounet predict --model OUTPUT
        --runtime onnxruntime`` (or ``openvino``).

    Raises:
        MissingDependencyError: if onnx or onnxruntime is not installed (or
            torch, to export a graph of another tile size).
        ModelFileError: for a graph that is already int8.
        TilingError: for an ``.onnx`` model and another tile size.
        OutputExistsError, OutputNotWritableError: the usual output errors.
        EmptySceneError, RegionError: see :func:`calibration_tiles`; and the
            scene errors of :class:`~geounet.io.read.Scene`.
    """
    options = options or QuantizeOptions()
    import_optional("onnx")
    import_optional("onnxruntime")
    loaded = as_loaded(model)
    with atomic_path(output, overwrite=overwrite) as tmp:
        graph, tile = _source_graph(loaded, tile_size_px)
        meta = read_onnx_metadata(graph)
        props, graph_px = onnx_props(graph)
        tiles = calibration_tiles(calibration, meta, tile, graph_px or tile, bands, options)
        keep = _quantize_file(graph, tiles, tmp, options)
        info = _info(graph, calibration, meta, tiles, tile, bands, options)
        info["fp32_nodes"] = keep
        info["check"] = _check(graph, tmp, tiles, meta)
        _write_props(tmp, props, meta, info)
    log.info("wrote int8 graph %s (%d calibration tiles; on them max |dp| %.4f, classes agree "
             "%.4f %%)", output, len(tiles), info["check"]["max_abs_dp"],
             100 * info["check"]["class_agreement"])
    return Path(output)
