"""geounet benchmarks: does the result depend on the tiling? Before and after issue 13.

Usage:
    python benchmarks/tiling.py --before OLD.safetensors [--model buildings-atlanta]
        [--mosaic 4096] [--reps 2] [--png docs/tiling_dp.png] [--json OUT.json]

``OLD.safetensors`` is the bundled building model as geounet 0.1 shipped it
(``align_corners=True``, no measured context), e.g.
``git show 22bf61a:geounet/models/weights/buildings-atlanta.safetensors > old.safetensors``.

Everything is measured in one run, on this machine, on the real Atlanta chip
(``examples/data/atlanta_sample.tif``), building pixels = probability >= the
model's threshold, compared only at pixels at least 128 px from the scene's
edge:

1. for each model, the building IoU and max |dp| of several tilings against
   one forward pass over the whole chip (full context, padded to the model's
   pad multiple), and of 256/64 against 512/128. Tilings go through
   :func:`geounet.pipeline.arrays.predict_array`, the same plan and stitcher
   as ``geounet predict``: aligned offsets, and the blending margin from the
   model's ``context_px`` (none for the old model);
2. the cost: model pixels run per scene pixel (``len(plan) * tile^2 /
   scene area``) of each tiling on an 8192 x 8192 scene;
3. the price in time: ``geounet.predict`` on a ``--mosaic`` px mosaic of the
   chip with the new model at the old default tiling (256/32, no margin) and
   at its own default (and at 384 and 512 px tiles with that overlap), torch on the
   CPU, median of ``--reps`` runs taking turns;
4. with ``--png``: a picture of |dp| between two tilings, the old model at its
   default 256/32 against 512/128 (left), the new one at its default against
   384 px tiles with the overlap its context gives (right); 0 black, 0.5 or
   more white.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from itertools import combinations
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import runtimes  # benchmarks/ is not a package: its CPU helpers
from run import make_atlanta_mosaic

CHIP = Path(__file__).resolve().parents[1] / "examples" / "data" / "atlanta_sample.tif"
EDGE = 128


def agreement(a: np.ndarray, b: np.ndarray, threshold: float) -> tuple[float, float]:
    """Building IoU and max |dp| of two ``(1, h, w)`` rasters, ``EDGE`` px from the edges."""
    pa, pb = a[0, EDGE:-EDGE, EDGE:-EDGE], b[0, EDGE:-EDGE, EDGE:-EDGE]
    ca, cb = pa >= threshold, pb >= threshold
    union = (ca | cb).sum()
    return (float((ca & cb).sum() / union) if union else 1.0), float(np.abs(pa - pb).max())


def cost(tile: int, overlap: int, align: int, size: int = 8192) -> float:
    """Model pixels run per scene pixel for a ``size``-px square scene."""
    from geounet.pipeline.tiling import plan_tiles

    return len(plan_tiles(size, size, tile, overlap, align)) * tile**2 / size**2


def tilings_of(loaded, tilings) -> dict:
    """IoU/max |dp| against the full pass for each ``(tile, overlap)``, and the arrays."""
    from geounet.io.read import Scene
    from geounet.measure_context import full_pass_probs
    from geounet.models.foreign_onnx import input_scaler
    from geounet.pipeline.arrays import predict_array
    from geounet.pipeline.runtime_torch import Predictor
    from geounet.pipeline.tiling import plan_tiles

    meta = loaded.metadata
    pred = Predictor(loaded.module, meta.binary, meta.pad_multiple, "cpu", precision="fp32")
    full = full_pass_probs(CHIP, meta, pred)
    with Scene(CHIP, None, default_bands=meta.bands) as sc:
        from rasterio.windows import Window

        data, valid = sc.read(Window(0, 0, sc.width, sc.height))
        x = input_scaler(meta, sc.dataset.dtypes[0])(data, valid)
    out: dict = {"rows": [], "arrays": {}}
    c = meta.context_px or 0
    for tile, overlap in tilings:
        probs = predict_array(pred, x, 1, tile, overlap, 4, meta.pad_multiple, c)
        plan = plan_tiles(x.shape[2], x.shape[1], tile, overlap, meta.pad_multiple, c)
        iou, dp = agreement(probs, full, meta.threshold)
        out["arrays"][(tile, overlap)] = probs
        out["rows"].append({"tiling": f"{tile}/{plan.overlap_px}", "margin_px": plan.margin_px,
                            "iou_vs_full": round(iou, 4), "max_dp_vs_full": round(dp, 4),
                            "model_px_per_scene_px": round(cost(tile, overlap,
                                                                meta.pad_multiple), 3)})
    pairs = []
    for a, b in combinations(list(out["arrays"]), 2):
        iou, dp = agreement(out["arrays"][a], out["arrays"][b], meta.threshold)
        pairs.append({"a": f"{a[0]}/{a[1]}", "b": f"{b[0]}/{b[1]}", "iou": round(iou, 4),
                      "max_dp": round(dp, 4)})
    out["pairs"] = pairs
    return out


def time_tilings(model, mosaic: Path, tilings, reps: int) -> dict:
    """Median seconds of ``geounet.predict`` on ``mosaic`` per tiling, runs taking turns."""
    from geounet import predict
    from geounet.config import PredictConfig, TilingConfig

    times: dict = {t: [] for t in tilings}
    for _ in range(reps):
        for (tile, overlap, margin) in tilings:
            m = model if margin else replace_context(model)
            t0 = time.perf_counter()
            predict(mosaic, model=m, tiling=TilingConfig(tile, overlap),
                    predict=PredictConfig(runtime="torch"), keep_footprints=False)
            times[(tile, overlap, margin)].append(time.perf_counter() - t0)
    return {f"{t}/{o}{'' if m else ' (no margin)'}": round(statistics.median(v), 2)
            for (t, o, m), v in times.items()}


def replace_context(loaded):
    """The loaded model with no context (plain feathering, as before issue 13)."""
    from geounet.models.modelfile import LoadedModel

    meta = replace(loaded.metadata, context_px=None, context={})
    return LoadedModel(loaded.module, meta, loaded.path, loaded.format)


def write_png(path: Path, before: np.ndarray, after: np.ndarray) -> None:
    """Two |dp| panels side by side, 0 black to >= 0.5 white, 8 px white gap."""
    import rasterio

    def grey(dp: np.ndarray) -> np.ndarray:
        return (np.clip(dp / 0.5, 0, 1) * 255).astype(np.uint8)

    h, w = before.shape
    img = np.full((h, 2 * w + 8), 255, np.uint8)
    img[:, :w], img[:, w + 8:] = grey(before), grey(after)
    with rasterio.open(path, "w", driver="PNG", width=img.shape[1], height=h, count=1,
                       dtype="uint8") as ds:
        ds.write(img, 1)


def main() -> None:  # noqa: D103
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", required=True, help="geounet 0.1's buildings-atlanta file")
    ap.add_argument("--model", default="buildings-atlanta")
    ap.add_argument("--mosaic", type=int, default=4096)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--png", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    import torch

    from geounet.models import load_model

    old, new = load_model(a.before), load_model(a.model)
    c = new.metadata.context_px or 0
    common = [(256, 64), (512, 128), (512, 256)]
    report: dict = {"cpu": runtimes.cpu_line(), "torch": torch.__version__,
                    "context_px": c, "context": new.metadata.context}
    report["before"] = tilings_of(old, [(256, 32), *common])
    new_tilings = [(new.metadata.tile_size_px, new.metadata.overlap_px), *common,
                   (256, 2 * c + 16), (384, 2 * c + 16)]
    report["after"] = tilings_of(new, new_tilings)
    # each model at its default against a 512 px (old) or 384 px (new) tiling by its own rule
    dp_old = np.abs(report["before"]["arrays"][(256, 32)] - report["before"]["arrays"][(512, 128)])
    after = report["after"]["arrays"]
    dp_new = np.abs(after[new_tilings[0]] - after[new_tilings[-1]])
    if a.png:
        write_png(a.png, dp_old[0], dp_new[0])
    for k in ("before", "after"):
        del report[k]["arrays"]
    with tempfile.TemporaryDirectory() as tmp:
        mosaic = Path(tmp) / "mosaic.tif"
        make_atlanta_mosaic(mosaic, a.mosaic)
        busy0, own0 = runtimes.machine_busy_s(), runtimes.own_cpu_s()
        ov = new.metadata.overlap_px
        report["seconds"] = time_tilings(new, mosaic, [
            (256, 32, False), (new.metadata.tile_size_px, ov, True), (384, ov, True),
            (512, ov, True)], a.reps)
        report["other_cpu_s"] = round(runtimes.machine_busy_s() - busy0
                                      - (runtimes.own_cpu_s() - own0), 1)
    secs = list(report["seconds"].values())
    report["time_ratio_new_default_vs_256_32"] = round(secs[1] / secs[0], 3)
    print(json.dumps(report, indent=1))
    if a.json:
        a.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
