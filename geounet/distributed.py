"""Scale-out on a Dask distributed cluster.

Two ways a run is spread over a cluster (``geounet predict --scheduler ADDRESS``
or ``--scheduler local[:N]``):

* **Many scenes**: each scene is one task; the worker runs the whole pipeline
  and writes the outputs itself, so scene and output paths must be reachable
  from every worker (shared file system, or GDAL ``/vsis3/``-style paths for
  scenes).
* **One large scene**: the tiling plan is cut into blocks of whole tile rows.
  A block's tiles reach ``overlap`` pixels into the next block (the halo), so
  blocks need nothing from each other. Each block is read and predicted on a
  worker, which returns its tiles' probabilities; the client stitches,
  writes and vectorises them in plan order, one strip at a time, exactly as a
  local run does, so the result is the same as the local one.

Every worker process loads the model once and keeps it for later tasks
(:func:`worker_model`). Workers need geounet installed and the model file (or
use a bundled model name). Dask's nanny starts workers with
``OMP_NUM_THREADS=1``; give each worker process one GPU with
``CUDA_VISIBLE_DEVICES`` (or dask-cuda's ``LocalCUDACluster``) and leave
``--device auto``.

Requires ``pip install geounet[dask]`` (``dask[distributed]``).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import rasterio

from geounet.config import PredictConfig
from geounet.errors import MissingDependencyError, SchedulerError
from geounet.io.read import Scene, iter_tile_batches
from geounet.io.regrid import ModelGrid
from geounet.models.foreign_onnx import input_scaler
from geounet.models.modelfile import LoadedModel, load_model, model_spec
from geounet.pipeline.predictors import make_predictor, resolve_runtime
from geounet.pipeline.run import PredictResult, predict_scene
from geounet.pipeline.scenes import scene_jobs
from geounet.pipeline.sources import Tile, mark_nodata
from geounet.pipeline.tiling import TilePlan
from geounet.progress import NullProgress, Progress, check_cancelled

log = logging.getLogger(__name__)

_MODELS: dict[Any, Any] = {}


def worker_model(spec: str) -> LoadedModel:
    """The loaded model for ``spec`` in this process, loaded on first use.

    Args:
        spec: A model file path or bundled model name.

    Returns:
        The cached :class:`~geounet.models.modelfile.LoadedModel`.
    """
    if spec not in _MODELS:
        _MODELS[spec] = load_model(spec)
    return _MODELS[spec]


@contextmanager
def connect(scheduler: str) -> Iterator[Any]:
    """A ``distributed.Client`` for ``ADDRESS`` or a new ``LocalCluster`` for ``local[:N]``.

    Args:
        scheduler: ``tcp://host:8786`` (any address Dask accepts), or
            ``local`` / ``local:N`` to start ``N`` worker processes (default:
            one per CPU core) with one thread each.

    Yields:
        The connected ``distributed.Client`` (closed, with its local cluster, on exit).

    Raises:
        MissingDependencyError: if dask.distributed is not installed.
        SchedulerError: if the address cannot be reached.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise MissingDependencyError(
            "--scheduler needs Dask distributed: pip install 'geounet[dask]'"
        ) from exc
    m = re.fullmatch(r"local(?::(\d+))?", scheduler)
    if m:
        n = int(m.group(1) or os.cpu_count() or 1)
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               dashboard_address=":0")
        client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
            cluster.close()
        return
    try:
        client = Client(scheduler, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise SchedulerError(
            f"cannot reach Dask scheduler {scheduler!r} ({exc}); check the address, or use "
            "--scheduler local:N"
        ) from exc
    try:
        yield client
    finally:
        client.close()


def predict_block(scene_path: str, bands: list[int], windows: list[Any], spec: str,
                  config: PredictConfig, grid: ModelGrid | None = None) -> list[Tile]:
    """Worker task: read, scale and predict the tiles of one block.

    The predictor (runtime, device, precision, TTA of ``config``) is built once
    per worker process and kept for later blocks.

    Args:
        scene_path: Scene path (reachable from the worker).
        bands: 1-based bands in model input order.
        windows: The block's tile windows (all of the plan's tile size).
        spec: Model file path or bundled name.
        config: The run's prediction options.
        grid: The model-GSD grid the run reads the scene on (``Scene.grid``).

    Returns:
        ``[(window, probs)]`` for the block's tiles that have valid pixels,
        ``probs`` ``(k, t, t)`` float32, NaN at nodata pixels.
    """
    loaded = worker_model(spec)
    meta = loaded.metadata
    tile_px = int(windows[0].width)
    key = ("predictor", spec, config, tile_px)
    if key not in _MODELS:
        _MODELS[key] = make_predictor(loaded, config, tile_px)
    predictor = _MODELS[key]
    with rasterio.open(scene_path) as ds:  # GeoDeep-style models scale by the data type
        dtype = ds.dtypes[bands[0] - 1]
    scaler = input_scaler(meta, dtype)
    out: list[Tile] = []
    for wins, batch, valid, _ in iter_tile_batches(scene_path, bands, windows, scaler,
                                                   config.batch_size, grid):
        if batch is not None:
            out.extend(zip(wins, mark_nodata(predictor(batch), valid), strict=True))
    return out


def blocks_of(plan: TilePlan, rows_per_block: int) -> list[list[Any]]:
    """Cut a plan's windows into blocks of ``rows_per_block`` whole tile rows.

    Args:
        plan: The tile plan.
        rows_per_block: Tile rows per block (at least 1 is used).

    Returns:
        The blocks' window lists, in plan order.
    """
    per_row = len(plan.col_offsets)
    windows = plan.windows
    step = per_row * max(1, rows_per_block)
    return [windows[i : i + step] for i in range(0, len(windows), step)]


class DaskTileSource:
    """A tile source (:class:`geounet.pipeline.sources.TileSource`) on a Dask cluster.

    Blocks of whole tile rows are read and predicted on the workers; their
    tiles come back here in plan order, so the run stitches, writes and
    vectorises them exactly as a local run does. At most ``max_in_flight``
    blocks (default: twice the workers) are submitted ahead of the block being
    stitched, so client memory stays bounded.

    Args:
        client: A ``distributed.Client``.
        rows_per_block: Tile rows per task.
        max_in_flight: Blocks submitted ahead (default: 2 per worker).
    """

    def __init__(self, client: Any, rows_per_block: int = 1,
                 max_in_flight: int | None = None) -> None:
        self.client = client
        self.rows_per_block = rows_per_block
        self.max_in_flight = max_in_flight

    def tiles(self, scene: Scene, plan: TilePlan, model: LoadedModel, config: PredictConfig,
              progress: Progress) -> Iterator[Tile]:
        """Predicted tiles in plan order (see :class:`~geounet.pipeline.sources.TileSource`).

        Args:
            scene: The open scene (its path must be reachable from the workers).
            plan: The tile plan.
            model: The loaded model (its file path or bundled name goes to the workers).
            config: Prediction options.
            progress: Reporter (stage ``predict``).

        Returns:
            An iterator of ``(window, probs)``.
        """
        name, why = resolve_runtime(model, config, plan.tile_size_px)
        log.info("runtime %s on the workers (%s)", name, why)  # one choice for every worker
        return _cluster_tiles(self.client, scene, plan, model_spec(model),
                              replace(config, runtime=name), progress, self.rows_per_block,
                              self.max_in_flight)


def _cluster_tiles(client: Any, scene: Scene, plan: TilePlan, spec: str,
                   config: PredictConfig, progress: Progress, rows_per_block: int,
                   max_in_flight: int | None) -> Iterator[Tile]:
    blocks = blocks_of(plan, rows_per_block)
    n_workers = max(1, len(client.scheduler_info().get("workers", {})))
    limit = max_in_flight or 2 * n_workers
    total = len(plan)
    progress(0, total, "predict")
    futures: list[Any] = []
    submitted = done = tiles_done = 0

    def submit(block: list[Any]) -> Any:
        return client.submit(predict_block, scene.path, scene.bands, block, spec, config,
                             scene.grid, pure=False)

    try:
        while done < len(blocks):
            while submitted < len(blocks) and submitted - done < limit:
                futures.append(submit(blocks[submitted]))
                submitted += 1
            tiles = futures[done].result()
            futures[done] = None
            check_cancelled(progress)
            yield from tiles
            tiles_done += len(blocks[done])
            done += 1
            progress(tiles_done, total, "predict")
    finally:
        for f in futures:
            if f is not None:
                f.cancel()


def _scene_task(scene: str, output: Any, spec: str, prob_out: Any, mask_out: Any,
                kwargs: dict[str, Any]) -> PredictResult:
    return predict_scene(scene, output, model=worker_model(spec), prob_out=prob_out,
                         mask_out=mask_out, **kwargs)


def predict_scenes(client: Any, scenes: Any, out_dir: Any, fmt: str = "geojson", *,
                   model: Any = None, prob_out_dir: Any = None, mask_out_dir: Any = None,
                   progress: Progress | None = None, **kwargs: Any) -> list[PredictResult]:
    """Run whole scenes as tasks on the workers; results in scene order.

    The cluster version of :func:`geounet.pipeline.scenes.predict_scenes`: each
    worker runs the whole pipeline on its scene and writes the outputs itself.

    Args:
        client: ``distributed.Client``.
        scenes: Scene paths, folders or glob patterns (reachable from the workers).
        out_dir: Existing folder for the vector outputs ``<stem>.<fmt>``.
        fmt: ``geojson``, ``gpkg``, ``fgb`` or ``parquet``.
        model: Model path, bundled name or LoadedModel (its file must be
            reachable from the workers).
        prob_out_dir: Folder for ``<stem>_prob.tif`` files, or None.
        mask_out_dir: Folder for ``<stem>_classes.tif`` files, or None.
        progress: Reporter; counts finished scenes (stage ``scenes``).
        **kwargs: Other :func:`geounet.pipeline.run.predict_scene` options.

    Returns:
        One :class:`~geounet.pipeline.run.PredictResult` per scene, in order.

    Raises:
        OutputNotWritableError: if a folder does not exist.
        GeounetError: the first failed scene's error.
    """
    from distributed import as_completed

    jobs = scene_jobs(scenes, out_dir, fmt, prob_out_dir, mask_out_dir)
    spec = model_spec(model)
    progress = progress or NullProgress()
    futures = [client.submit(_scene_task, str(j["scene"]), j["output"], spec,
                             j["prob_out"], j["mask_out"], kwargs, pure=False)
               for j in jobs]
    index = {f.key: i for i, f in enumerate(futures)}
    results: list[Any] = [None] * len(futures)
    progress(0, len(futures), "scenes")
    try:
        for n, fut in enumerate(as_completed(futures), start=1):
            results[index[fut.key]] = fut.result()
            progress(n, len(futures), "scenes")
            check_cancelled(progress)
    finally:
        for f in futures:
            f.cancel()
    return results
