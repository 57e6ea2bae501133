"""Training a segmentation model on a scene and its label polygons.

Labels are rasterised in the scene's grid (``rasterio.features.rasterize``,
pixel-centre rule). A rectangular validation region is held out spatially: its
labels never reach the loss, and training windows are drawn outside it when
they fit. Each step takes random tiles with random flips and 90-degree
rotations. The loss is BCE + soft Dice for a binary model (Milletari et al.
2016, V-Net) and cross-entropy for several classes; pixels labelled
:data:`IGNORE` (nodata, or the validation region) are left out of both. The
optimiser is Adam (Kingma and Ba 2015). After each epoch the validation region
is predicted with the same tiling and blending as ``geounet predict`` and the
checkpoint with the best validation IoU is kept.
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

    def __post_init__(self) -> None:
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


def rasterize_labels(
    labels_path: str | os.PathLike,
    width: int,
    height: int,
    transform,
    crs,
    label_column: str | None = None,
    class_name: str = "building",
) -> tuple[np.ndarray, list[str]]:
    """Burn label polygons into the scene's grid.

    Args:
        labels_path: Vector file (GeoJSON, GeoPackage...), any CRS.
        width, height: Scene size in pixels.
        transform: Scene affine transform.
        crs: Scene CRS; labels are reprojected to it.
        label_column: Attribute with each polygon's class (sorted unique
            values become classes 1..n); ``None`` burns every polygon as 1.
        class_name: Foreground name when ``label_column`` is ``None``.

    Returns:
        ``(labels, classes)``: ``(height, width)`` uint8 class ids (0 =
        background) and class names by id.

    Raises:
        InputNotFoundError: if the file does not exist.
        MissingCRSError: if it has no CRS.
        LabelError: if it is unreadable, empty, lacks ``label_column`` or
            does not overlap the scene.
    """
    from rasterio.features import rasterize

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
    gdf = gdf[~gdf.geometry.is_empty & gdf.geometry.notna()].to_crs(crs)
    if gdf.empty:
        raise LabelError(f"labels {str(labels_path)!r} hold no geometries")
    if label_column is None:
        classes = ["background", class_name]
        shapes = ((g, 1) for g in gdf.geometry)
    else:
        if label_column not in gdf.columns:
            raise LabelError(
                f"label column {label_column!r} is not in {str(labels_path)!r}: columns are "
                f"{', '.join(c for c in gdf.columns if c != 'geometry')}"
            )
        names = sorted(str(v) for v in gdf[label_column].dropna().unique())
        classes = ["background", *names]
        ids = {n: i + 1 for i, n in enumerate(names)}
        shapes = ((g, ids[str(v)]) for g, v in zip(gdf.geometry, gdf[label_column]) if v is not None)
    labels = rasterize(shapes, out_shape=(height, width), transform=transform, fill=0,
                       dtype="uint8")
    if not labels.any():
        raise LabelError(
            f"labels {str(labels_path)!r} do not overlap the scene (after reprojection to the "
            "scene's CRS); check that they belong to this scene"
        )
    return labels, classes


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


def iou_from_labels(pred: np.ndarray, truth: np.ndarray, n_classes: int) -> float:
    """Foreground IoU (binary) or mean IoU over classes present (multi-class).

    Pixels where ``truth == IGNORE`` are left out.

    Args:
        pred: ``(h, w)`` int class ids.
        truth: ``(h, w)`` uint8 class ids.
        n_classes: Number of classes including background.
    """
    sel = truth != IGNORE
    p, t = pred[sel].astype(np.int64), truth[sel].astype(np.int64)
    classes = [1] if n_classes == 2 else range(n_classes)
    ious = []
    for c in classes:
        inter = np.sum((p == c) & (t == c))
        union = np.sum((p == c) | (t == c))
        if union:
            ious.append(inter / union)
    return float(np.mean(ious)) if ious else 0.0


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
    from geounet.models.modelfile import ModelMetadata, save_model
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
    lab, classes = rasterize_labels(labels, width, height, transform, crs,
                                    config.label_column, config.class_name)
    lab[~valid] = IGNORE
    val = parse_region(config.val_region, width, height, transform) if config.val_region else None
    train_lab = lab.copy()
    train_valid = valid.copy()
    if val is not None:
        rs, cs = window_slices(val)
        train_lab[rs, cs] = IGNORE
        train_valid[rs, cs] = False
        if not train_valid.any():
            raise GeounetError(f"validation region {config.val_region!r} covers the whole scene")
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
                loss = F.cross_entropy(logits, yb, ignore_index=IGNORE)
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
        if val is not None:
            model.eval()
            predictor = Predictor(model, binary, pad_multiple, device, precision="fp32",
                                  channels_last=False)
            m = config.overlap_px
            r0, c0 = max(0, int(val.row_off) - m), max(0, int(val.col_off) - m)
            r1 = min(height, int(val.row_off + val.height) + m)
            c1 = min(width, int(val.col_off + val.width) + m)
            probs = predict_array(predictor, scaled[:, r0:r1, c0:c1], out_ch, t,
                                  config.overlap_px, config.batch_size)
            pred = (probs[0] >= config.threshold) if binary else probs.argmax(0)
            rs, cs = window_slices(val)
            pred = pred[rs.start - r0 : rs.stop - r0, cs.start - c0 : cs.stop - c0]
            val_iou = iou_from_labels(pred, lab[rs, cs], len(classes))
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
        training={
            "scene": os.path.basename(str(scene)),
            "scene_sha256": _sha256(scene),
            "labels": os.path.basename(str(labels)),
            "labels_sha256": _sha256(labels),
            "config": cfg,
            "best_epoch": best_epoch,
            "val_iou": None if val is None else history[best_epoch - 1]["val_iou"],
            "history": history,
            "torch": torch.__version__,
            "seconds": round(time.perf_counter() - t_start, 1),
        },
    )
    save_model(model, meta, output)
    return TrainResult(
        path=Path(output),
        best_epoch=best_epoch,
        val_iou=None if val is None else history[best_epoch - 1]["val_iou"],
        history=history,
        seconds=time.perf_counter() - t_start,
    )
