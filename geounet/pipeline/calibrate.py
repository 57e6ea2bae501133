"""``runtime="fastest"``: time each installed runtime once per model and machine, keep the winner.

Which runtime is fastest depends on the CPU, the model and the tile size (on
this project's AVX-512 and AVX2 machines torch, onnxruntime and OpenVINO ran
within 0.8-1.2x of each other, the winner changing with the model), so this
measures instead of guessing: each candidate predicts one batch of the run's tile size (random
normal input) after two warm-up batches, three times; the highest median
throughput wins. The choice is kept in ``runtimes.json`` in the cache folder
(:func:`geounet.onnx_cache.cache_dir`), keyed by the model file's SHA-256, the
tile and batch size, device and precision, the CPU (model name and flags), the
thread count and the runtimes' versions, so a new machine, library or model is
measured again. The file is rewritten through a temporary file and a rename; a
corrupt file is measured anew.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from importlib import metadata
from typing import Any

import numpy as np

from geounet.config import PredictConfig
from geounet.errors import GeounetError
from geounet.io.checksum import file_sha256
from geounet.models.modelfile import LoadedModel
from geounet.onnx_cache import cache_dir

log = logging.getLogger(__name__)

Factory = Callable[[LoadedModel, PredictConfig, int], Callable[[np.ndarray], np.ndarray]]


def machine_key() -> str:
    """The CPU, its flags and the thread count, hashed (part of a calibration key).

    Returns:
        16 hex characters.
    """
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            info = fh.read()
        model = next((ln for ln in info.splitlines() if ln.startswith("model name")), "")
        flags = next((ln for ln in info.splitlines() if ln.startswith("flags")), "")
        cpu = f"{model}|{' '.join(sorted(flags.split()))}"
    except OSError:
        pass
    return hashlib.sha256(f"{cpu}|{os.cpu_count()}".encode()).hexdigest()[:16]


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "-"


def calibration_key(loaded: LoadedModel, config: PredictConfig, tile_px: int) -> str:
    """The key of a calibration: everything the winner depends on.

    Args:
        loaded: The model.
        config: Its batch size, device and precision are part of the key.
        tile_px: The run's tile size in pixels.

    Returns:
        A text key.
    """
    versions = ",".join(f"{d}={_version(d)}" for d in ("torch", "onnxruntime", "openvino"))
    return (f"{file_sha256(loaded.path)[:16]}|t{tile_px}|b{config.batch_size}|"
            f"{config.device}|{config.precision}|{machine_key()}|{versions}")


def _load() -> dict[str, Any]:
    path = cache_dir() / "runtimes.json"
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _store(key: str, entry: dict[str, Any]) -> None:
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        data = _load()
        data[key] = entry
        tmp = folder / f".runtimes.{uuid.uuid4().hex[:8]}.json"
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, folder / "runtimes.json")
    except OSError as exc:  # a calibration that cannot be kept is measured again next time
        log.warning("cannot keep the runtime calibration in %s: %s", folder, exc)


def _throughput(predictor: Callable[[np.ndarray], np.ndarray], batch: np.ndarray) -> float:
    """Median Mpx/s of three timed batches after two warm-up batches."""
    for _ in range(2):
        predictor(batch)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        predictor(batch)
        times.append(time.perf_counter() - t0)
    b, _, h, w = batch.shape
    return b * h * w / float(np.median(times)) / 1e6


def fastest_runtime(loaded: LoadedModel, config: PredictConfig, tile_px: int,
                    factories: Mapping[str, Factory], candidates: list[str]) -> tuple[str, str]:
    """The fastest of ``candidates`` for this model on this machine (measured once, then cached).

    Args:
        loaded: The model.
        config: The run's prediction options (``runtime`` is ignored).
        tile_px: The run's tile size in pixels.
        factories: Runtime name -> predictor factory
            (:data:`geounet.pipeline.predictors.RUNTIMES`).
        candidates: The installed runtimes that can run this model.

    Returns:
        ``(runtime, reason)``; the reason gives the measured Mpx/s.
    """
    key = calibration_key(loaded, config, tile_px)
    entry = _load().get(key)
    if isinstance(entry, dict) and entry.get("runtime") in candidates:
        return entry["runtime"], f"fastest here, measured before: {entry['mpx_s']} Mpx/s"
    rng = np.random.default_rng(0)
    c = loaded.metadata.in_channels
    batch = rng.standard_normal((config.batch_size, c, tile_px, tile_px)).astype(np.float32)
    speeds: dict[str, float] = {}
    for name in candidates:
        try:
            predictor = factories[name](loaded, replace(config, runtime=name), tile_px)
            speeds[name] = round(_throughput(predictor, batch), 3)
        except GeounetError as exc:  # a runtime that cannot run here is left out
            log.info("runtime %s left out of the calibration: %s", name, exc)
    if not speeds:
        return candidates[0], "no runtime could be measured"
    best = max(speeds, key=lambda n: speeds[n])
    _store(key, {"runtime": best, "mpx_s": speeds, "measured": time.strftime("%Y-%m-%d")})
    return best, f"fastest here, just measured: {speeds} Mpx/s"
