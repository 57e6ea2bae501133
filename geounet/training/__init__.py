"""Training a segmentation model on a scene and its label polygons.

Labels are rasterised in the scene's grid (``rasterio.features.rasterize``, pixel-centre
rule; :mod:`geounet.labels`). A rectangular validation region is held out spatially: its
labels never reach the loss, and training windows are drawn outside it when they fit.
Sparse labels (land cover digitised as a few polygons) are trained with
``unlabelled="ignore"``: pixels outside every polygon are left out of the loss instead of
counting as background, and whole polygons, a seeded fraction of each class, can be held
out for validation (``val_polygons``) so that the pixels of one polygon are never split
between training and validation. Each step takes random tiles with random flips and
90-degree rotations. The loss is BCE + soft Dice for a binary model (Milletari et al.
2016, V-Net) and cross-entropy for several classes; pixels labelled
:data:`~geounet.constants.CLASS_NODATA` (nodata, or the validation region) are left out
of both. The optimiser is Adam (Kingma and Ba 2015). After each epoch the held-out region
or polygons are predicted with the same tiling and blending as ``geounet predict``, and
the checkpoint with the best validation IoU is kept (or the last one, ``keep="last"``).

Modules: :mod:`~geounet.training.config` (options and result),
:mod:`~geounet.training.data` (the scene and its split),
:mod:`~geounet.training.sampling` (random tiles), :mod:`~geounet.training.losses`,
:mod:`~geounet.training.trainer` (:class:`~geounet.training.trainer.Trainer` and
:func:`train`).
"""

from __future__ import annotations

from geounet._deprecated import moved_to
from geounet.training.config import TrainConfig, TrainResult
from geounet.training.dataset import SceneSpec, pairs, read_dataset_csv
from geounet.training.trainer import Trainer, train

__all__ = ["SceneSpec", "TrainConfig", "TrainResult", "Trainer", "pairs", "read_dataset_csv",
           "train"]

__getattr__ = moved_to(__name__, {
    "IGNORE": "geounet.constants:CLASS_NODATA",
    "load_labels": "geounet.labels",
    "burn_labels": "geounet.labels",
    "rasterize_labels": "geounet.labels",
    "hold_out_polygons": "geounet.labels",
    "iou_from_labels": "geounet.metrics",
})
