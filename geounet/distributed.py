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

from geounet.errors import GeounetError

log = logging.getLogger(__name__)

_MODELS: dict = {}


def worker_model(spec: str):
    """The loaded model for ``spec`` in this process, loaded on first use."""
    if spec not in _MODELS:
        from geounet.models.modelfile import load_model

        _MODELS[spec] = load_model(spec)
    return _MODELS[spec]


@contextmanager
def connect(scheduler: str) -> Iterator:
    """A ``distributed.Client`` for ``ADDRESS`` or a new ``LocalCluster`` for ``local[:N]``.

    Args:
        scheduler: ``tcp://host:8786`` (any address Dask accepts), or
            ``local`` / ``local:N`` to start ``N`` worker processes (default:
            one per CPU core) with one thread each.

    Raises:
        GeounetError: if dask.distributed is not installed or the address
            cannot be reached.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise GeounetError(
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
        raise GeounetError(
            f"cannot reach Dask scheduler {scheduler!r} ({exc}); check the address, or use "
            "--scheduler local:N"
        ) from exc
    try:
        yield client
    finally:
        client.close()


def predict_block(scene_path: str, bands: list[int], windows: list, model_spec: str,
                  batch_size: int, device: str, precision: str, channels_last,
                  tta: str = "none") -> list:
    """Worker task: read, scale and predict the tiles of one block.

    Returns:
        ``[(window, probs)]`` for the block's tiles that have valid pixels,
        ``probs`` ``(k, t, t)`` float32.
    """
    from geounet.config import PredictConfig
    from geounet.io.read import BandScaler, iter_tile_batches
    from geounet.inference import make_predictor

    loaded = worker_model(model_spec)
    meta = loaded.metadata
    key = ("predictor", model_spec, device, precision, channels_last, tta)
    if key not in _MODELS:
        config = PredictConfig(device=device, precision=precision, channels_last=channels_last,
                               tta=tta)
        _MODELS[key] = make_predictor(loaded, config)
    predictor = _MODELS[key]
    scaler = BandScaler(meta.band_mean, meta.band_std)
    out = []
    for wins, batch, _ in iter_tile_batches(scene_path, bands, windows, scaler, batch_size):
        if batch is not None:
            out.extend(zip(wins, predictor(batch)))
    return out


def blocks_of(plan, rows_per_block: int) -> list[list]:
    """Cut a plan's windows into blocks of ``rows_per_block`` whole tile rows."""
    per_row = len(plan.col_offsets)
    windows = plan.windows
    step = per_row * max(1, rows_per_block)
    return [windows[i : i + step] for i in range(0, len(windows), step)]


def distributed_tiles(client, scene, plan, model_spec: str, config, progress,
                      rows_per_block: int = 1, max_in_flight: int | None = None):
    """Tiles predicted on the cluster, yielded in plan order (for the stitcher).

    At most ``max_in_flight`` blocks (default: twice the workers) are
    submitted ahead of the block being stitched, so client memory stays
    bounded.

    Yields:
        ``(window, probs)`` as :func:`geounet.pipeline.predicted_tiles`.
    """
    from geounet.progress import check_cancelled

    blocks = blocks_of(plan, rows_per_block)
    n_workers = max(1, len(client.scheduler_info().get("workers", {})))
    limit = max_in_flight or 2 * n_workers
    total = len(plan)
    progress(0, total, "predict")
    futures: list = []
    submitted = done = tiles_done = 0

    def submit(block):
        return client.submit(
            predict_block, scene.path, scene.bands, block, model_spec, config.batch_size,
            config.device, config.precision, config.channels_last, config.tta, pure=False,
        )

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


def _scene_task(scene, output, model_spec, prob_out, mask_out, kwargs):
    from geounet.pipeline import predict_scene

    return predict_scene(scene, output, model=worker_model(model_spec), prob_out=prob_out,
                         mask_out=mask_out, **kwargs)


def map_scenes(client, jobs: list[dict], model_spec: str, progress, **kwargs) -> list:
    """Run whole scenes as tasks on the workers; results in job order.

    Args:
        client: ``distributed.Client``.
        jobs: ``{"scene", "output", "prob_out", "mask_out"}`` per scene.
        model_spec: Model path or bundled name (reachable from the workers).
        progress: Reporter; counts finished scenes (stage ``scenes``).
        **kwargs: Other :func:`geounet.pipeline.predict_scene` options.
    """
    from distributed import as_completed

    from geounet.progress import check_cancelled

    futures = [client.submit(_scene_task, str(j["scene"]), j["output"], model_spec,
                             j.get("prob_out"), j.get("mask_out"), kwargs, pure=False)
               for j in jobs]
    index = {f.key: i for i, f in enumerate(futures)}
    results: list = [None] * len(futures)
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


def model_spec_of(model) -> str:
    """A model reference workers can load: a file path or a bundled name."""
    from geounet.models.modelfile import LoadedModel, resolve_model_path

    if isinstance(model, LoadedModel):
        return str(model.path)
    return str(resolve_model_path(model))
