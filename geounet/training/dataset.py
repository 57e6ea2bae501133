"""A training dataset: scenes with their label files and splits.

Given as a CSV (``geounet train --dataset DATASET.csv``) with a header and the
columns ``scene,labels[,split]``, paths relative to the CSV's folder, or as
pairs of paths (``geounet train SCENE LABELS [SCENE LABELS ...]``). ``split``
is ``train`` (the default: trained on, and validated on its held-out region or
polygons if any), ``val`` (the whole scene is validation, never trained on) or
``test`` (never read in training; recorded in the model so ``geounet evaluate
--held-out-of MODEL`` can score it). One label file may serve many scenes: its
polygons are reprojected to each scene's CRS and clipped to it.

Example CSV::

    scene,labels,split
    tiles/a.tif,footprints.gpkg,train
    tiles/b.tif,footprints.gpkg,train
    tiles/c.tif,footprints.gpkg,val
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from geounet.errors import InputNotFoundError, InvalidOptionError

SPLITS = ("train", "val", "test")
"""Values of a dataset's ``split`` column."""


@dataclass(frozen=True)
class SceneSpec:
    """One scene of a dataset.

    Attributes:
        scene: Raster path (absolute, or relative to the working directory).
        labels: Label polygons of it (any vector format, any CRS).
        split: ``train``, ``val`` or ``test`` (see the module docstring).
    """

    scene: str
    labels: str
    split: str = "train"

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise InvalidOptionError(
                f"split {self.split!r} of scene {self.scene!r} must be one of "
                f"{', '.join(SPLITS)}; fix the dataset's split column"
            )


def read_dataset_csv(path: str | os.PathLike) -> list[SceneSpec]:
    """Read a dataset CSV (columns ``scene,labels[,split]``, paths relative to it).

    Args:
        path: The CSV file (UTF-8, comma-separated, with a header row).

    Returns:
        The scenes in file order, paths resolved against the CSV's folder.

    Raises:
        InputNotFoundError: if the CSV or a file it names does not exist.
        InvalidOptionError: for a missing column, an empty file, or a bad split.
    """
    csv_path = Path(path)
    if not csv_path.is_file():
        raise InputNotFoundError(f"dataset {str(path)!r} does not exist; check the path")
    base = csv_path.parent
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        fields = [c.strip().lower() for c in reader.fieldnames or []]
        missing = [c for c in ("scene", "labels") if c not in fields]
        if missing:
            raise InvalidOptionError(
                f"dataset {str(path)!r} has columns {fields} but needs 'scene' and 'labels' "
                "(and optionally 'split'); write a header row such as scene,labels,split"
            )
        rows = [{k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
                for row in reader]
    specs = [SceneSpec(str(base / r["scene"]), str(base / r["labels"]),
                       r.get("split") or "train") for r in rows if r.get("scene")]
    if not specs:
        raise InvalidOptionError(f"dataset {str(path)!r} lists no scenes; add rows below its "
                                 "header")
    check_files(specs)
    return specs


def pairs(paths: list[str] | tuple[str, ...]) -> list[SceneSpec]:
    """Scenes from ``SCENE LABELS [SCENE LABELS ...]``, all in the ``train`` split.

    Args:
        paths: An even number of paths, scene then labels.

    Returns:
        The scenes, in order.

    Raises:
        InvalidOptionError: for an odd number of paths or none.
        InputNotFoundError: if a file does not exist.
    """
    if not paths or len(paths) % 2:
        raise InvalidOptionError(
            f"{len(paths)} path(s) given; training takes pairs SCENE LABELS [SCENE LABELS ...] "
            "or --dataset DATASET.csv"
        )
    specs = [SceneSpec(str(paths[i]), str(paths[i + 1])) for i in range(0, len(paths), 2)]
    check_files(specs)
    return specs


def check_files(specs: list[SceneSpec]) -> None:
    """Raise :class:`InputNotFoundError` for the first scene or label file that is missing."""
    for s in specs:
        for kind, p in (("scene", s.scene), ("labels", s.labels)):
            if not Path(p).exists():
                raise InputNotFoundError(f"{kind} {p!r} does not exist; check the path")


def split_of(specs: list[SceneSpec], split: str) -> list[SceneSpec]:
    """The scenes of one split, in order."""
    return [s for s in specs if s.split == split]
