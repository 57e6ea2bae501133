"""Footprint quality and time of the post-processing and test-time augmentation options.

Usage: python benchmarks/footprints.py [--model buildings-atlanta] [--region east:0.333]
       [--reps 3] [--variants all] [--workdir /tmp/geounet-footprints] [--synthetic N]

Runs ``geounet.predict`` on the bundled Atlanta sample (SpaceNet, 0.5 m) once per variant
(baseline, ``--split-touching``, ``--regularize``, ``--fill-holes``, ``--tta flips|d4``, and
combinations) and scores the *polygons* it writes against the OpenStreetMap footprints of the
held-out region with ``geounet.evaluate`` (the SpaceNet metric: one-to-one matches at
IoU >= 0.5), so the options that change polygons but not the class raster are measured.
Prints, per variant, building precision/recall/F1 with TP/FP/FN, the mean IoU of matched
pairs, the polygon count, the median wall time of ``reps`` runs (after one warm-up run), and
the ratios of F1 and time to the baseline; and, for reference only, the F1 over the whole chip
(whose western two thirds trained the model, so only the post-processing is new to it). Figures in docs/performance.md come from this script.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENE = ROOT / "examples" / "data" / "atlanta_sample.tif"
LABELS = ROOT / "examples" / "data" / "atlanta_buildings.geojson"

VARIANTS = {
    "baseline": ({}, {}),
    "split": ({"split_touching": True}, {}),
    "fill-holes 4 m2": ({"fill_holes_m2": 4.0}, {}),
    "regularize": ({"regularize": True}, {}),
    "regularize 45": ({"regularize": True, "regularize_45": True}, {}),
    "split+regularize": ({"split_touching": True, "regularize": True}, {}),
    "tta flips": ({}, {"tta": "flips"}),
    "tta d4": ({}, {"tta": "d4"}),
    "tta d4+split+regularize": ({"split_touching": True, "regularize": True}, {"tta": "d4"}),
}


def main() -> None:
    """Run every variant and print the table."""
    import geounet
    from geounet._alloc import tune_allocator
    from geounet.config import PredictConfig, VectorizeConfig

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="buildings-atlanta")
    ap.add_argument("--region", default="east:0.333")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--variants", default="all")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workdir", default="/tmp/geounet-footprints")
    ap.add_argument("--synthetic", type=int, default=0, metavar="N")
    a = ap.parse_args()
    if a.synthetic:
        synthetic(a.synthetic)
    tune_allocator()
    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    names = list(VARIANTS) if a.variants == "all" else a.variants.split(",")
    model = geounet.load_model(a.model)
    geounet.predict(SCENE, None, model=model, predict=PredictConfig(device=a.device))  # warm-up
    rows = []
    for name in names:
        vec, pred = VARIANTS[name]
        out = work / f"{name.replace(' ', '_').replace('+', '_')}.gpkg"
        times = []
        for _ in range(a.reps):
            t0 = time.perf_counter()
            r = geounet.predict(SCENE, out, model=model, vectorize=VectorizeConfig(**vec),
                                predict=PredictConfig(device=a.device, **pred),
                                outputs=geounet.OutputConfig(overwrite=True))
            times.append(time.perf_counter() - t0)
        b = geounet.evaluate(out, LABELS, region=a.region, grid=SCENE).buildings
        whole = geounet.evaluate(out, LABELS, grid=SCENE).buildings
        rows.append((name, b, r.n_polygons, statistics.median(times), whole))
    base_f1, base_t = rows[0][1].f1, rows[0][3]
    print(f"model {a.model}, scene {SCENE.name}, held-out region {a.region}, device {a.device}, "
          f"median of {a.reps} runs")
    print(f"{'variant':<26} {'P':>6} {'R':>6} {'F1':>6} {'TP/FP/FN':>9} {'mIoU':>6} "
          f"{'polys':>5} {'time s':>7} {'F1 x':>6} {'time x':>6} {'F1 chip':>7}")
    for name, b, n, t, whole in rows:
        ratio = b.f1 / base_f1 if base_f1 else float("nan")
        print(f"{name:<26} {b.precision:6.4f} {b.recall:6.4f} {b.f1:6.4f} "
              f"{f'{b.tp}/{b.fp}/{b.fn}':>9} {b.mean_iou_matched:6.3f} {n:5d} {t:7.2f} "
              f"{ratio:6.3f} {t / base_t:6.2f} {whole.f1:7.4f}")


def synthetic(n: int, seed: int = 0) -> None:
    """Touching pairs, singles and L-shapes on a 0.5 m grid: F1 before and after the split."""
    import numpy as np
    import shapely
    from rasterio import features
    from rasterio.transform import from_origin

    from geounet.config import VectorizeConfig
    from geounet.metrics import match_footprints
    from geounet.pipeline.arrays import vectorize

    rng = np.random.default_rng(seed)
    cell = 60.0  # metres per layout cell
    side = int(np.ceil(np.sqrt(3 * n)))
    transform = from_origin(500000, 4000000, 0.5, 0.5)
    size = int(side * cell / 0.5)
    truth, shapes = [], []
    for k in range(3 * n):
        cx = 500000 + (k % side + 0.5) * cell
        cy = 4000000 - (k // side + 0.5) * cell
        w1, h1, w2, h2 = rng.uniform(8, 20, 4)
        angle = rng.uniform(0, 90)
        kind = k % 3
        if kind == 0:  # two buildings touching along part of a wall
            shared = rng.uniform(0.2, 0.6) * min(h1, h2)
            a = shapely.box(-w1, 0, 0, h1)
            b = shapely.box(0, h1 - shared, w2, h1 - shared + h2)
            parts = [a, b]
        elif kind == 1:  # one building
            parts = [shapely.box(-w1 / 2, -h1 / 2, w1 / 2, h1 / 2)]
        else:  # one L-shaped building
            parts = [shapely.union_all([shapely.box(0, 0, w1, h1 / 2),
                                        shapely.box(0, 0, w1 / 2, h1)])]
        for p in parts:
            p = shapely.affinity.rotate(p, angle, origin=(0, 0))
            p = shapely.affinity.translate(p, cx, cy)
            truth.append(p)
            shapes.append(p)
    mask = features.rasterize(((g, 1) for g in shapes), out_shape=(size, size),
                              transform=transform, dtype="uint8")
    print(f"synthetic: {n} touching pairs, {n} single and {n} L-shaped buildings "
          f"({len(truth)} true footprints), 0.5 m pixels")
    for split in (False, True):
        t0 = time.perf_counter()
        gdf = vectorize(mask, transform, "EPSG:32616", ["background", "building"],
                        config=VectorizeConfig(split_touching=split))
        dt = time.perf_counter() - t0
        m = match_footprints(list(gdf.geometry), truth)
        print(f"  split_touching={split!s:<5}: {len(gdf):4d} polygons, F1 {m.f1:.4f} "
              f"(TP {m.tp}, FP {m.fp}, FN {m.fn}), {dt:.2f} s")


if __name__ == "__main__":
    sys.exit(main())
