"""Training a segmentation model on scenes and their label polygons.

A run takes one scene and its labels, or a dataset of scenes (a CSV ``scene,labels[,split]``,
:mod:`~geounet.training.dataset`). No scene is read whole: scenes are prepared from their
metadata and label polygons (:mod:`~geounet.training.scenes`: the grid at the training GSD,
polygons reprojected and clipped, held-out region and polygons, sampling weight), and
windows are read from disk by a ``torch.utils.data`` dataset with worker processes
(:mod:`~geounet.training.windows`), labels burned per window (``rasterio.features.rasterize``,
pixel-centre rule). Held out: ``val`` scenes, a rectangular region of each ``train`` scene
(its labels never reach the loss, windows are drawn outside it when they fit) and, for
sparse labels (``unlabelled="ignore"``: pixels outside every polygon left out of the loss),
whole polygons (``val_polygons``). Batches are augmented with kornia
(:mod:`~geounet.training.augment`). The loss is BCE + soft Dice for a binary model
(Milletari et al. 2016, V-Net) and cross-entropy for several classes; pixels labelled
:data:`~geounet.constants.CLASS_NODATA` are left out of both. The optimiser is Adam (Kingma
and Ba 2015). After each epoch the held-out pixels are predicted with the same tiling and
blending as ``geounet predict`` (:mod:`~geounet.training.validation`), the best (or last)
weights kept, and a checkpoint written (:mod:`~geounet.training.checkpoint`,
:mod:`~geounet.training.records`). Runs start from another model with ``init``
(:mod:`~geounet.training.finetune`) and are data-parallel under ``torchrun``
(:mod:`~geounet.training.ddp`).

Modules in order: :mod:`~geounet.training.config` (options and result),
:mod:`~geounet.training.dataset`, :mod:`~geounet.training.scenes`,
:mod:`~geounet.training.data` (the prepared run), :mod:`~geounet.training.sampling`,
:mod:`~geounet.training.windows`, :mod:`~geounet.training.augment`,
:mod:`~geounet.training.losses`, :mod:`~geounet.training.model_setup`,
:mod:`~geounet.training.trainer` (:class:`~geounet.training.trainer.Trainer` and
:func:`train`), :mod:`~geounet.training.output` (the model file).
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
