"""Many scenes with one loaded model: scene arguments, output names, the loop.

The Dask version, with each scene one task on a cluster, is
:func:`geounet.distributed.predict_scenes`.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any

from geounet.constants import RASTER_SUFFIXES
from geounet.errors import InputNotFoundError, OutputNotWritableError
from geounet.models.modelfile import as_loaded
from geounet.pipeline.run import PredictResult, predict_scene
from geounet.progress import NullProgress, PrefixedProgress, Progress


def expand_scenes(items: Any) -> list[Path]:
    """Expand scene arguments: files, folders (their rasters) and glob patterns.

    Args:
        items: Paths, folder paths or patterns such as ``tiles/*.tif``.

    Returns:
        Scene paths in argument order, folders and patterns sorted, no duplicates.

    Raises:
        InputNotFoundError: for a path or pattern that matches nothing.
    """
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.suffix.lower() in RASTER_SUFFIXES)
        elif p.exists():
            found = [p]
        elif any(ch in str(item) for ch in "*?["):
            found = sorted(Path(q) for q in glob.glob(str(item)))
        else:
            found = [p]  # reported as missing by the reader, with its own message
        if not found:
            raise InputNotFoundError(
                f"{str(item)!r} matches no raster ({', '.join(RASTER_SUFFIXES)}); check the "
                "folder or pattern"
            )
        for q in found:
            if q not in out:
                out.append(q)
    return out


def output_for(scene: str | os.PathLike[str], out_dir: str | os.PathLike[str],
               suffix: str) -> Path:
    """The output path of a scene: ``OUT_DIR/<scene stem><suffix>``.

    Args:
        scene: Scene path.
        out_dir: Output folder.
        suffix: e.g. ``.geojson`` or ``_classes.tif``.

    Returns:
        The path.
    """
    return Path(out_dir) / f"{Path(scene).stem}{suffix}"


def scene_jobs(scenes: Any, out_dir: Any, fmt: str = "geojson", prob_out_dir: Any = None,
               mask_out_dir: Any = None) -> list[dict[str, Any]]:
    """One job per scene: its path and its output paths.

    Args:
        scenes: Scene paths, folders or glob patterns (see :func:`expand_scenes`).
        out_dir: Existing folder for the vector outputs ``<stem>.<fmt>``.
        fmt: ``geojson``, ``gpkg``, ``fgb`` or ``parquet``.
        prob_out_dir: Folder for ``<stem>_prob.tif`` files, or None.
        mask_out_dir: Folder for ``<stem>_classes.tif`` files, or None.

    Returns:
        ``[{"scene", "output", "prob_out", "mask_out"}]`` in scene order.

    Raises:
        OutputNotWritableError: if a folder does not exist.
        InputNotFoundError: for a scene argument that matches nothing.
    """
    for d in (out_dir, prob_out_dir, mask_out_dir):
        if d is not None and not Path(d).is_dir():
            raise OutputNotWritableError(
                f"output folder {str(d)!r} does not exist; create it first"
            )
    return [{
        "scene": path,
        "output": output_for(path, out_dir, f".{fmt.lstrip('.')}"),
        "prob_out": output_for(path, prob_out_dir, "_prob.tif") if prob_out_dir else None,
        "mask_out": output_for(path, mask_out_dir, "_classes.tif") if mask_out_dir else None,
    } for path in expand_scenes(scenes)]


def predict_scenes(scenes: Any, out_dir: Any, fmt: str = "geojson", *, model: Any = None,
                   prob_out_dir: Any = None, mask_out_dir: Any = None,
                   progress: Progress | None = None, **kwargs: Any) -> list[PredictResult]:
    """Run :func:`~geounet.pipeline.run.predict_scene` over many scenes with one loaded model.

    Args:
        scenes: Scene paths, folders or glob patterns (see :func:`expand_scenes`).
        out_dir: Existing folder for the vector outputs ``<stem>.<fmt>``.
        fmt: ``geojson``, ``gpkg``, ``fgb`` or ``parquet``.
        model: As in ``predict_scene``; loaded once.
        prob_out_dir: Folder for ``<stem>_prob.tif`` files, or None.
        mask_out_dir: Folder for ``<stem>_classes.tif`` files, or None.
        progress: Reporter; stages are named ``predict <stem>``.
        **kwargs: Other ``predict_scene`` options.

    Returns:
        One :class:`~geounet.pipeline.run.PredictResult` per scene, in order.

    Raises:
        OutputNotWritableError: if a folder does not exist.
        GeounetError: the first scene's error stops the run (finished scenes'
            outputs are complete and kept).
    """
    jobs = scene_jobs(scenes, out_dir, fmt, prob_out_dir, mask_out_dir)
    progress = progress or NullProgress()
    loaded = as_loaded(model)
    return [predict_scene(job["scene"], job["output"], model=loaded, prob_out=job["prob_out"],
                          mask_out=job["mask_out"],
                          progress=PrefixedProgress(progress, job["scene"].stem), **kwargs)
            for job in jobs]
