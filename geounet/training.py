"""Training a segmentation model on a scene and its label polygons.

Labels are rasterised in the scene's grid (``rasterio.features.rasterize``, pixel-centre
rule). A rectangular validation region is held out spatially: its labels never reach the
loss, and training windows are drawn outside it when they fit. Sparse labels (land cover
digitised as a few polygons) are trained with ``unlabelled="ignore"``: pixels outside
every polygon are left out of the loss instead of counting as background, and whole
polygons, a seeded fraction of each class, can be held out for validation
(``val_polygons``) so that the pixels of one polygon are never split between training
and validation. Each step takes random tiles with random flips and 90-degree rotations.
The loss is BCE + soft Dice for a binary model (Milletari et al. 2016, V-Net) and cross-
entropy for several classes; pixels labelled :data:`IGNORE` (nodata, or the validation
region) are left out of both. The optimiser is Adam (Kingma and Ba 2015). After each
epoch the held-out region or polygons are predicted with the same tiling and blending as
``geounet predict``, and the checkpoint with the best validation IoU is kept (or the
last one, ``keep="last"``).
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from geounet.errors import GeounetError, LabelError, MissingCRSError
from geounet.progress import NullProgress, Progress, check_cancelled

log = logging.getLogger(__name__)

IGNORE = 255
"""Label value of pixels left out of the loss and the metrics."""


@dataclass(frozen=True)
class TrainConfig:
    """Options of :func:`train`.

    Attributes:
        arch: Registered architecture (``unet``, ``smp_unet``...).
        arch_args: Its options, e.g. ``{"base_channels": 16, "depth": 4}`` or
            ``{"encoder_name": "resnet18"}``.
        bands: 1-based bands to train on (default: all).
        band_names: Names of the bands (default ``band1``...).
        label_column: Attribute holding the class of each polygon; ``None``
            makes a binary model of ``class_name``.
        class_name: Name of the foreground class of a binary model.
        epochs: Number of epochs.
        steps_per_epoch: Optimiser steps per epoch.
        batch_size: Tiles per step.
        tile_size_px: Training tile size in pixels (also the recommended
            inference tile size stored in the model).
        overlap_px: Recommended inference overlap stored in the model.
        lr: Adam learning rate.
        seed: Seed of every random choice; equal seeds give equal models on CPU.
        val_region: Held-out region (see :mod:`geounet.regions`), or ``None``.
        device: ``auto``, ``cpu``, ``cuda[:N]``.
        name: Model name stored in the file.
        threshold: Default probability threshold stored in the model.
        keep: ``"best"`` keeps the epoch with the best validation IoU (the
            validation region then takes part in model selection);
            ``"last"`` keeps the last epoch, so the region is only monitored
            and its figures are a true held-out test.
        lr_schedule: ``"cosine"`` anneals the learning rate from ``lr`` to 0
            over all steps (Loshchilov and Hutter 2017, SGDR, without
            restarts); ``"constant"`` keeps it.
        unlabelled: ``"background"``: pixels outside every polygon are class
            0, ``background`` (dense labels, e.g. building footprints).
            ``"ignore"``: they are left out of the loss and the model has no
            background class (sparse labels, e.g. land-cover polygons).
        class_map: Label value (as text) -> class name, in class-id order
            (several values may share a name); ``None`` takes the sorted
            unique values of ``label_column`` as names. Polygons whose value
            is not in the map are not used.
        val_polygons: Fraction ``0 < f < 1`` of each class's polygons held out
            for validation, chosen with ``seed`` (at least one per class that
            has two or more polygons, never all of them), or ``None``.
        class_weighting: ``"none"`` or ``"balanced"``: cross-entropy weights
            proportional to the inverse pixel frequency of each class among
            the training labels (multi-class models).
    """

    arch: str = "unet"
    arch_args: dict = field(default_factory=lambda: {"base_channels": 16, "depth": 4})
    bands: list[int] | None = None
    band_names: list[str] | None = None
    label_column: str | None = None
    class_name: str = "building"
    epochs: int = 20
    steps_per_epoch: int = 50
    batch_size: int = 8
    tile_size_px: int = 256
    overlap_px: int = 32
    lr: float = 1e-3
    seed: int = 0
    val_region: str | None = "east:0.25"
    device: str = "auto"
    name: str = "model"
    threshold: float = 0.5
    keep: str = "best"
    lr_schedule: str = "cosine"
    unlabelled: str = "background"
    class_map: dict[str, str] | None = None
    val_polygons: float | None = None
    class_weighting: str = "none"

    def __post_init__(self) -> None:
        if self.unlabelled not in ("background", "ignore"):
            raise GeounetError(
                f"unlabelled {self.unlabelled!r} must be 'background' (dense labels) or "
                "'ignore' (sparse labels)"
            )
        if self.class_weighting not in ("none", "balanced"):
            raise GeounetError(
                f"class weighting {self.class_weighting!r} must be 'none' or 'balanced'"
            )
        if self.val_polygons is not None and not 0 < self.val_polygons < 1:
            raise GeounetError(
                f"validation polygon fraction {self.val_polygons} must be between 0 and 1 "
                "(exclusive), e.g. --val-polygons 0.3"
            )
        if self.val_polygons is not None and self.unlabelled != "ignore":
            raise GeounetError(
                f"--val-polygons {self.val_polygons} holds out whole polygons, which only "
                "scores sparse labels: with dense labels (--unlabelled background) the held-out "
                "pixels would all be foreground and any model that predicts everything would "
                "score 1.0; pass --unlabelled ignore, or hold out a region with --val-region"
            )
        if self.class_map is not None and self.label_column is None:
            raise GeounetError("a class map needs a label column: pass --label-column too")
        if self.lr_schedule not in ("cosine", "constant"):
            raise GeounetError(f"lr schedule {self.lr_schedule!r} must be 'cosine' or 'constant'")
        if self.keep not in ("best", "last"):
            raise GeounetError(f"keep {self.keep!r} must be 'best' or 'last'")
        for attr in ("epochs", "steps_per_epoch", "batch_size"):
            if getattr(self, attr) < 1:
                raise GeounetError(f"{attr} {getattr(self, attr)} must be 1 or more")
        if self.lr <= 0:
            raise GeounetError(f"learning rate {self.lr} must be positive, e.g. --lr 1e-3")
        if self.tile_size_px < 32:
            raise GeounetError(f"training tile size {self.tile_size_px} px must be >= 32")


@dataclass
class TrainResult:
    """What :func:`train` produced.

    Attributes:
        path: Model file written.
        best_epoch: 1-based epoch of the kept checkpoint (see ``keep``).
        val_iou: Its validation IoU (foreground IoU, or mean IoU for
            several classes); ``None`` without a validation region.
        history: Per-epoch ``{"epoch", "loss", "val_iou"}``.
        seconds: Wall time.
    """

    path: Path
    best_epoch: int
    val_iou: float | None
    history: list[dict]
    seconds: float


def _sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_labels(
    labels_path: str | os.PathLike,
    crs,
    label_column: str | None = None,
    class_name: str = "building",
    class_map: dict[str, str] | None = None,
    unlabelled: str = "background",
):
    """Read label polygons and give each one a class id.

    Args:
        labels_path: Vector file (GeoJSON, GeoPackage, Shapefile...), any CRS.
        crs: Scene CRS; labels are reprojected to it.
        label_column: Attribute with each polygon's class; ``None`` makes every
            polygon ``class_name``.
        class_name: Foreground name when ``label_column`` is ``None``.
        class_map: Label value (as text) -> class name, in class-id order;
            ``None``: the sorted unique values are the names.
        unlabelled: ``"background"`` puts a ``background`` class at id 0;
            ``"ignore"`` has none (sparse labels).

    Returns:
        ``(gdf, classes)``: the usable polygons in ``crs`` with an int column
        ``class_id`` and ``row`` (0-based position of the feature in the
        file), and the class names by id.

    Raises:
        InputNotFoundError: if the file does not exist.
        MissingCRSError: if it has no CRS.
        LabelError: if it is unreadable, empty, lacks ``label_column``, or no
            value matches ``class_map``.
    """
    from geounet.errors import InputNotFoundError
    from geounet.io.write import read_vector

    if not Path(labels_path).exists():
        raise InputNotFoundError(f"labels {str(labels_path)!r} do not exist; check the path")
    try:
        gdf = read_vector(labels_path)
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad label file
        raise LabelError(f"cannot read labels {str(labels_path)!r}: {exc}") from exc
    if gdf.crs is None:
        raise MissingCRSError(
            f"labels {str(labels_path)!r} have no CRS; write them with one (e.g. in QGIS, "
            "Set Layer CRS) or give a GeoPackage"
        )
    gdf = gdf.reset_index(drop=True)
    gdf["row"] = np.arange(len(gdf))
    gdf = gdf[~gdf.geometry.is_empty & gdf.geometry.notna()].to_crs(crs)
    if gdf.empty:
        raise LabelError(f"labels {str(labels_path)!r} hold no geometries")
    first = 1 if unlabelled == "background" else 0
    if label_column is None:
        names = [class_name]
        gdf = gdf.assign(class_id=first)
    else:
        if label_column not in gdf.columns:
            raise LabelError(
                f"label column {label_column!r} is not in {str(labels_path)!r}: columns are "
                f"{', '.join(c for c in gdf.columns if c not in ('geometry', 'row'))}"
            )
        values = gdf[label_column].map(lambda v: None if v is None or v != v else _text(v))
        if class_map is None:
            class_map = {v: v for v in sorted(set(values.dropna()), key=_natural)}
        names = list(dict.fromkeys(class_map.values()))
        ids = {v: names.index(n) + first for v, n in class_map.items()}
        gdf = gdf.assign(class_id=values.map(ids))
        unknown = sorted(set(values.dropna()) - set(class_map))
        if unknown:
            log.warning("labels with %s values %s are not in the class map; not used",
                        label_column, unknown)
        gdf = gdf[gdf["class_id"].notna()]
        if gdf.empty:
            raise LabelError(
                f"no polygon of {str(labels_path)!r} has a {label_column!r} value in the class "
                f"map {class_map}; the values are {sorted(set(values.dropna()))}"
            )
        gdf = gdf.assign(class_id=gdf["class_id"].astype(int))
    classes = (["background"] if first else []) + names
    return gdf, classes


def _natural(value: str):
    """Sort key: numeric codes by value (1, 2, 11), other text alphabetically after them."""
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


def _text(value) -> str:
    """Label value as text: 3.0 -> '3', so integer codes read as floats still match."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def burn_labels(gdf, width: int, height: int, transform, fill: int) -> np.ndarray:
    """Rasterise labelled polygons (``class_id`` column) in a scene's grid.

    Pixel-centre rule (``rasterio.features.rasterize``); where polygons overlap
    the later one wins.

    Args:
        gdf: Polygons in the scene's CRS with a ``class_id`` column.
        width, height: Scene size in pixels.
        transform: Scene affine transform.
        fill: Value of pixels outside every polygon (0 or :data:`IGNORE`).

    Returns:
        ``(height, width)`` uint8 class ids.
    """
    from rasterio.features import rasterize

    if gdf.empty:
        return np.full((height, width), fill, np.uint8)
    return rasterize(zip(gdf.geometry, gdf["class_id"].astype(int)), out_shape=(height, width),
                     transform=transform, fill=fill, dtype="uint8")


def rasterize_labels(
    labels_path: str | os.PathLike,
    width: int,
    height: int,
    transform,
    crs,
    label_column: str | None = None,
    class_name: str = "building",
    class_map: dict[str, str] | None = None,
    unlabelled: str = "background",
) -> tuple[np.ndarray, list[str]]:
    """Burn label polygons into the scene's grid.

    Args:
        labels_path: Vector file (GeoJSON, GeoPackage...), any CRS.
        width, height: Scene size in pixels.
        transform: Scene affine transform.
        crs: Scene CRS; labels are reprojected to it.
        label_column, class_name, class_map, unlabelled: As in :func:`load_labels`.

    Returns:
        ``(labels, classes)``: ``(height, width)`` uint8 class ids (unlabelled
        pixels 0 = background, or :data:`IGNORE`) and class names by id.

    Raises:
        InputNotFoundError: if the file does not exist.
        MissingCRSError: if it has no CRS.
        LabelError: if it is unreadable, empty, lacks ``label_column`` or
            does not overlap the scene.
    """
    gdf, classes = load_labels(labels_path, crs, label_column, class_name, class_map, unlabelled)
    fill = 0 if unlabelled == "background" else IGNORE
    labels = burn_labels(gdf, width, height, transform, fill)
    _require_overlap(labels, fill, labels_path)
    return labels, classes


def _require_overlap(labels: np.ndarray, fill: int, labels_path) -> None:
    """Raise LabelError when no pixel of the burned ``labels`` differs from ``fill``."""
    if not (labels != fill).any():
        raise LabelError(
            f"labels {str(labels_path)!r} do not overlap the scene (after reprojection to the "
            "scene's CRS); check that they belong to this scene"
        )


def hold_out_polygons(class_ids: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Choose whole polygons for validation, a fraction of each class.

    Per class with ``n`` polygons, ``round(fraction * n)`` of them, at least 1
    when ``n >= 2`` and at most ``n - 1`` (a class with one polygon keeps it
    for training), drawn with ``numpy.random.default_rng(seed)``.

    Args:
        class_ids: ``(n,)`` int class id per polygon.
        fraction: ``0 < fraction < 1``.
        seed: Random seed.

    Returns:
        ``(n,)`` bool, True for held-out polygons.
    """
    rng = np.random.default_rng(seed)
    out = np.zeros(len(class_ids), bool)
    for c in np.unique(class_ids):
        idx = np.flatnonzero(class_ids == c)
        if len(idx) < 2:
            continue
        k = min(len(idx) - 1, max(1, round(fraction * len(idx))))
        out[rng.choice(idx, size=k, replace=False)] = True
    return out


def _augment(x: np.ndarray, y: np.ndarray, rng: np.random.Generator):
    k = int(rng.integers(4))
    x, y = np.rot90(x, k, axes=(1, 2)), np.rot90(y, k, axes=(0, 1))
    if rng.random() < 0.5:
        x, y = x[:, :, ::-1], y[:, ::-1]
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


def _crop(arr: np.ndarray, r0: int, c0: int, t: int, fill) -> np.ndarray:
    sub = arr[..., r0 : r0 + t, c0 : c0 + t]
    ph, pw = t - sub.shape[-2], t - sub.shape[-1]
    if ph or pw:
        pad = [(0, 0)] * (sub.ndim - 2) + [(0, ph), (0, pw)]
        sub = np.pad(sub, pad, constant_values=fill)
    return sub


def _sample_origin(rng, width, height, t, val) -> tuple[int, int]:
    """Random tile origin, outside the validation window when possible."""
    for _ in range(100):
        r0 = int(rng.integers(0, max(1, height - t + 1)))
        c0 = int(rng.integers(0, max(1, width - t + 1)))
        if val is None:
            return r0, c0
        vr0, vc0 = int(val.row_off), int(val.col_off)
        vr1, vc1 = vr0 + int(val.height), vc0 + int(val.width)
        if r0 + t <= vr0 or r0 >= vr1 or c0 + t <= vc0 or c0 >= vc1:
            return r0, c0
    return r0, c0


def iou_from_labels(pred: np.ndarray, truth: np.ndarray, n_classes: int,
                    background: int | None = 0) -> float:
    """Foreground IoU (binary) or mean IoU over the classes present in the truth
    (multi-class, as :func:`geounet.metrics.class_metrics` computes it).

    Pixels where ``truth == IGNORE`` are left out.

    Args:
        pred: ``(h, w)`` int class ids.
        truth: ``(h, w)`` uint8 class ids.
        n_classes: Number of classes including background.
        background: Background class id, or ``None`` (no background class).
    """
    from geounet.metrics import class_metrics, confusion_matrix

    sel = truth != IGNORE
    names = [str(c) for c in range(n_classes)]
    m = class_metrics(confusion_matrix(pred[sel], truth[sel], n_classes), names)
    if n_classes == 2 and background == 0:
        return m.per_class["1"]["iou"] or 0.0
    return m.mean_iou


def train(
    scene: str | os.PathLike,
    labels: str | os.PathLike,
    output: str | os.PathLike,
    config: TrainConfig | None = None,
    progress: Progress | None = None,
    overwrite: bool = False,
) -> TrainResult:
    """Train a model on one scene and write a geounet model file.

    The scene is read whole into memory (training scenes are chips, not
    cities).

    Args:
        scene: Raster with a CRS.
        labels: Label polygons (any CRS; reprojected).
        output: ``.safetensors`` model file to write (atomically).
        config: :class:`TrainConfig`.
        progress: Reporter; ``train`` stage counts steps.
        overwrite: Replace an existing output.

    Returns:
        A :class:`TrainResult`.

    Raises:
        GeounetError: subclasses for bad scenes, labels, regions, outputs.
    """
    import torch
    import torch.nn.functional as F
    from rasterio.windows import Window

    from geounet.io.atomic import check_output
    from geounet.io.read import BandScaler, Scene, band_statistics
    from geounet.models.modelfile import ModelMetadata, default_colors, save_model
    from geounet.models.registry import build_model
    from geounet.pipeline import predict_array
    from geounet.inference import Predictor, resolve_device
    from geounet.regions import parse_region, window_slices

    config = config or TrainConfig()
    progress = progress or NullProgress()
    t_start = time.perf_counter()
    check_output(output, overwrite)
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)

    with Scene(scene, config.bands) as sc:
        data, valid = sc.read(Window(0, 0, sc.width, sc.height))
        width, height, transform, crs = sc.width, sc.height, sc.transform, sc.crs
        bands = sc.bands
        gsd = sc.gsd_m()
    if not valid.any():
        from geounet.errors import EmptySceneError

        raise EmptySceneError(f"every pixel of training scene {str(scene)!r} is nodata")
    gdf, classes = load_labels(labels, crs, config.label_column, config.class_name,
                               config.class_map, config.unlabelled)
    if len(classes) < 2:
        raise LabelError(
            f"labels {str(labels)!r} give one class ({classes[0]!r}) and no background: a "
            "model needs two classes or more; with sparse labels (--unlabelled ignore) give "
            "a --label-column with several values (and --classes), or use --unlabelled "
            "background for a binary model"
        )
    fill = 0 if config.unlabelled == "background" else IGNORE
    held = (hold_out_polygons(gdf["class_id"].to_numpy(), config.val_polygons, config.seed)
            if config.val_polygons else np.zeros(len(gdf), bool))
    train_lab = burn_labels(gdf[~held], width, height, transform, fill)
    _require_overlap(train_lab, fill, labels)
    # validation truth: the held-out region's labels, and the held-out polygons' pixels
    val_lab = np.full((height, width), IGNORE, np.uint8)
    if held.any():
        held_px = burn_labels(gdf[held], width, height, transform, IGNORE)
        train_lab[held_px != IGNORE] = IGNORE  # never trained on, also where polygons meet
        val_lab = held_px
    train_lab[~valid] = IGNORE
    val = parse_region(config.val_region, width, height, transform) if config.val_region else None
    train_valid = valid.copy()
    if val is not None:
        rs, cs = window_slices(val)
        val_lab[rs, cs] = burn_labels(gdf, width, height, transform, fill)[rs, cs]
        train_lab[rs, cs] = IGNORE
        train_valid[rs, cs] = False
        if not train_valid.any():
            raise GeounetError(f"validation region {config.val_region!r} covers the whole scene")
    val_lab[~valid] = IGNORE
    has_val = bool((val_lab != IGNORE).any())
    held_rows = [int(r) for r in gdf.loc[held, "row"]]
    if held.any():
        log.info("holding out %d of %d polygons for validation (rows %s)", int(held.sum()),
                 len(gdf), held_rows)
    mean, std = band_statistics(data, train_valid)
    scaled = BandScaler(mean, std)(data, valid)
    del data

    binary = len(classes) == 2
    out_ch = 1 if binary else len(classes)
    device = resolve_device(config.device)
    model = build_model(config.arch, len(bands), out_ch, **config.arch_args).to(device)
    pad_multiple = int(getattr(model, "pad_multiple", 32))
    if config.tile_size_px % pad_multiple:
        raise GeounetError(
            f"training tile size {config.tile_size_px} px is not a multiple of "
            f"{pad_multiple}, which architecture {config.arch!r} needs; pass e.g. "
            f"--tile-size {-(-config.tile_size_px // pad_multiple) * pad_multiple}"
        )
    weight = None
    if binary and config.class_weighting == "balanced":
        log.warning("class weighting 'balanced' applies to multi-class models; this one is "
                    "binary (BCE + Dice), so it is not weighted")
    if not binary and config.class_weighting == "balanced":
        counts = np.bincount(train_lab[train_lab != IGNORE], minlength=len(classes))
        freq = counts / max(1, counts.sum())
        w = np.where(counts > 0, 1.0 / np.maximum(freq, 1e-12), 0.0)
        w = w / w[counts > 0].mean()
        weight = torch.tensor(w, dtype=torch.float32, device=device)
        log.info("class weights %s", dict(zip(classes, np.round(w, 3).tolist())))
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    t = config.tile_size_px
    total = config.epochs * config.steps_per_epoch
    sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
             if config.lr_schedule == "cosine" else None)
    history: list[dict] = []
    best_iou, best_epoch, best_state = -1.0, 0, None
    log.info(
        "training %s on %s: %d classes %s, %d bands, val region %s, %d epochs x %d steps",
        config.arch, scene, len(classes), classes, len(bands), config.val_region,
        config.epochs, config.steps_per_epoch,
    )
    step = 0
    progress(0, total, "train")
    for epoch in range(1, config.epochs + 1):
        model.train()
        losses = []
        for _ in range(config.steps_per_epoch):
            xs, ys = [], []
            for _ in range(config.batch_size):
                r0, c0 = _sample_origin(rng, width, height, t, val)
                x, y = _augment(_crop(scaled, r0, c0, t, 0.0), _crop(train_lab, r0, c0, t, IGNORE),
                                rng)
                xs.append(x)
                ys.append(y)
            xb = torch.from_numpy(np.stack(xs)).to(device)
            yb = torch.from_numpy(np.stack(ys).astype(np.int64)).to(device)
            logits = model(xb)
            keep = yb != IGNORE
            if not keep.any():
                step += 1
                if sched is not None:
                    sched.step()
                continue
            if binary:
                z = logits[:, 0][keep]
                target = yb[keep].float()
                bce = F.binary_cross_entropy_with_logits(z, target)
                p = torch.sigmoid(z)
                dice = 1 - (2 * (p * target).sum() + 1) / (p.sum() + target.sum() + 1)
                loss = bce + dice
            else:
                loss = F.cross_entropy(logits, yb, weight=weight, ignore_index=IGNORE)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            losses.append(float(loss.detach()))
            step += 1
            progress(step, total, "train")
            check_cancelled(progress)
        val_iou = None
        if has_val:
            model.eval()
            predictor = Predictor(model, binary, pad_multiple, device, precision="fp32",
                                  channels_last=False)
            rows, cols = np.nonzero(val_lab != IGNORE)
            m = config.overlap_px
            r0, c0 = max(0, int(rows.min()) - m), max(0, int(cols.min()) - m)
            r1, c1 = min(height, int(rows.max()) + 1 + m), min(width, int(cols.max()) + 1 + m)
            probs = predict_array(predictor, scaled[:, r0:r1, c0:c1], out_ch, t,
                                  config.overlap_px, config.batch_size)
            pred = (probs[0] >= config.threshold) if binary else probs.argmax(0)
            val_iou = iou_from_labels(pred, val_lab[r0:r1, c0:c1], len(classes),
                                      background=0 if fill == 0 else None)
        loss_mean = float(np.mean(losses)) if losses else float("nan")
        history.append({"epoch": epoch, "loss": loss_mean, "val_iou": val_iou})
        log.info("epoch %d/%d loss %.4f val IoU %s", epoch, config.epochs, loss_mean,
                 "n/a" if val_iou is None else f"{val_iou:.4f}")
        score = val_iou if val_iou is not None else -loss_mean
        if config.keep == "last":
            score = epoch
        if best_state is None or score > best_iou:
            best_iou, best_epoch = score, epoch
            best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
    model.load_state_dict(best_state)
    model.to("cpu")
    cfg = asdict(config)
    cfg.pop("device")
    meta = ModelMetadata(
        name=config.name,
        architecture=config.arch,
        arch_args=dict(config.arch_args),
        bands=list(bands),
        band_names=config.band_names or [f"band{b}" for b in bands],
        band_mean=[float(v) for v in mean],
        band_std=[float(v) for v in std],
        classes=classes,
        gsd_m=round(gsd, 4),
        tile_size_px=t,
        overlap_px=config.overlap_px,
        threshold=config.threshold,
        pad_multiple=pad_multiple,
        background_class=0 if fill == 0 else None,
        class_colors=default_colors(classes, 0 if fill == 0 else None),
        training={
            "scene": os.path.basename(str(scene)),
            "scene_sha256": _sha256(scene),
            "labels": os.path.basename(str(labels)),
            "labels_sha256": _sha256(labels),
            "config": cfg,
            "best_epoch": best_epoch,
            "val_iou": history[best_epoch - 1]["val_iou"],
            "held_out_rows": held_rows,
            "history": history,
            "torch": torch.__version__,
            "seconds": round(time.perf_counter() - t_start, 1),
        },
    )
    save_model(model, meta, output)
    return TrainResult(
        path=Path(output),
        best_epoch=best_epoch,
        val_iou=history[best_epoch - 1]["val_iou"],
        history=history,
        seconds=time.perf_counter() - t_start,
    )
