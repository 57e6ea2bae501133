"""geounet benchmarks: the measured effect of training augmentation on the building model.

Usage:
    python benchmarks/augmentation.py [--model NAME_OR_PATH ...] [--runtime torch]
        [--precision fp32] [--workdir DIR] [--json OUT.json]

Default models: the bundled ``buildings-atlanta`` and, when it exists,
``build/aug/buildings-atlanta.safetensors`` (the same recipe,
``examples/make_default_model.sh``, trained with ``--augment full``). Takes under a
minute per model on 2 busy CPU cores (24 s for the bundled one).

Everything is measured in one run, on this machine, on the Atlanta sample
(``examples/data/atlanta_sample.tif``, 0.5 m; truth
``examples/data/atlanta_buildings.geojson``, 43 buildings). For each model:

1. held out: the whole chip predicted (``geounet.predict`` with ``mask_out``,
   the model's own tiling), then the footprint (building) F1 of
   ``geounet evaluate CLASSES.tif LABELS --region east:0.333``
   (:func:`geounet.evaluation.evaluate` with ``region="east:0.333"``): how
   the bundled model is scored, the eastern third being held out of its
   training. Shown beside it: the figure stamped in the model file, if any;
2. the footprint F1 of the whole chip at 0.5 m (the same class raster), and
   on copies of the chip resampled to 0.3 m and 0.8 m (reduced with
   ``average``, enlarged with ``cubic``, exactly as
   ``tests/pipeline/test_resample.py::_copy_at`` makes them), each predicted
   with ``resample="auto"`` (the default: read at the model's GSD) and
   ``resample="off"`` (read as it is).

Every model runs on the CPU with the same runtime and precision (default
torch fp32: a freshly trained ``.safetensors`` has no ONNX graph beside it,
and the bundled one's graph would otherwise make the comparison one of
runtimes too). F1 counts footprints matched at IoU >= 0.5 (SpaceNet); with 43
buildings (11 in the held-out third) one building moves the chip F1 by about
0.02-0.03 and the held-out F1 by about 0.09. It prints each model's
``training.config.augment`` (not recorded by models trained before
``--augment`` existed; their trainer did flips, today's ``--augment flips``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import runtimes  # benchmarks/ is not a package: its CPU helpers

ROOT = Path(__file__).resolve().parents[1]
CHIP = ROOT / "examples" / "data" / "atlanta_sample.tif"
LABELS = ROOT / "examples" / "data" / "atlanta_buildings.geojson"
AUGMENTED = ROOT / "build" / "aug" / "buildings-atlanta.safetensors"
REGION = "east:0.333"
GSDS = (0.3, 0.8)
COLUMNS = ["held-out east-third F1", "chip F1 0.5 m"] + [
    f"{g} m {m}" for g in GSDS for m in ("auto", "off")]


def copy_at(path: Path, gsd_m: float) -> Path:
    """The Atlanta chip resampled to ``gsd_m``, made as the tests make it.

    ``tests/builders.py::copy_at_gsd``: reduced with ``average``, enlarged with ``cubic``.
    """
    sys.path.insert(0, str(ROOT / "tests"))
    from builders import copy_at_gsd

    return Path(copy_at_gsd(path, gsd_m, CHIP))


def labels_of(specs: list[str]) -> list[str]:
    """The label of each model: its name, or its file stem (its path when stems clash)."""
    is_path = [bool(Path(s).suffix) or "/" in s for s in specs]
    short = [Path(s).stem if p else s for s, p in zip(specs, is_path, strict=True)]
    return [_rel(s) if p and short.count(sh) > 1 else sh
            for s, p, sh in zip(specs, is_path, short, strict=True)]


def _rel(path: str) -> str:
    p = Path(path).resolve()
    try:
        return str(p.relative_to(ROOT))
    except ValueError:
        return str(p)


def predict_f1(loaded, scene: Path, mask: Path, config, resample: str,
               region: str | None = None) -> dict:
    """Predict ``scene`` into the class raster ``mask`` and score its footprints.

    Returns:
        ``{"f1", "tp", "fp", "fn", "seconds"}`` of the whole scene, and with
        ``region`` also ``"region"``: the same of that region.
    """
    import geounet
    from geounet.config import OutputConfig
    from geounet.evaluation import evaluate

    t0 = time.perf_counter()
    geounet.predict(scene, None, model=loaded, mask_out=mask, predict=config,
                    resample=resample, outputs=OutputConfig(overwrite=True),
                    keep_footprints=False)
    out = _scores(evaluate(mask, LABELS).buildings)
    out["seconds"] = round(time.perf_counter() - t0, 2)
    if region:
        out["region"] = _scores(evaluate(mask, LABELS, region=region).buildings)
    return out


def _scores(b) -> dict:
    return {"f1": round(b.f1, 4), "tp": b.tp, "fp": b.fp, "fn": b.fn}


def measure_model(spec: str, label: str, copies: dict, work: Path, config) -> dict:
    """Every figure of one model (see the module docstring)."""
    from geounet.models import load_model

    loaded = load_model(spec)
    meta = loaded.metadata
    cfg = (meta.training or {}).get("config", {})
    row: dict = {"model": label, "spec": spec, "path": str(loaded.path),
                 "augment": cfg.get("augment", "not recorded"),
                 "stamped_heldout_f1": (meta.evaluation or {}).get("building_f1"),
                 "gsd_m": meta.gsd_m, "tiling": f"{meta.tile_size_px}/{meta.overlap_px}",
                 "context_px": meta.context_px}
    name = label.replace("/", "_")
    native = predict_f1(loaded, CHIP, work / f"{name}_0.5.tif", config, "auto", REGION)
    row["cells"] = {COLUMNS[0]: native.pop("region"), COLUMNS[1]: native}
    for gsd in GSDS:
        for mode in ("auto", "off"):
            row["cells"][f"{gsd} m {mode}"] = predict_f1(
                loaded, copies[gsd], work / f"{name}_{gsd}_{mode}.tif", config, mode)
    print(f"  {label}: done", file=sys.stderr, flush=True)
    return row


def print_table(rows: list[dict]) -> None:
    """The F1 table, then the footprint counts behind it."""
    width = max(len("model"), *(len(r["model"]) for r in rows))
    heads = ["held-out east-third F1", "chip F1 0.5 m", "0.3 m auto", "0.3 m off",
             "0.8 m auto", "0.8 m off"]
    print(f"\n{'model':<{width}} | " + " | ".join(heads) + " | stamped held-out F1")
    for r in rows:
        cells = [f"{r['cells'][c]['f1']:>{len(h)}.3f}" for c, h in zip(COLUMNS, heads,
                                                                       strict=True)]
        stamped = r["stamped_heldout_f1"]
        print(f"{r['model']:<{width}} | " + " | ".join(cells)
              + f" | {'-' if stamped is None else f'{stamped:.3f}':>19}")
    print("\nFootprints tp/fp/fn (truth: 11 in the east third, 43 on the chip)")
    print(f"{'model':<{width}} | " + " | ".join(heads))
    for r in rows:
        cells = [f"{c['tp']}/{c['fp']}/{c['fn']}" for c in (r["cells"][k] for k in COLUMNS)]
        print(f"{r['model']:<{width}} | " + " | ".join(f"{c:>{len(h)}}" for c, h in
                                                        zip(cells, heads, strict=True)))
    print()
    for r in rows:
        print(f"{r['model']}: training.config.augment = {r['augment']}; {r['path']}; GSD "
              f"{r['gsd_m']} m, tiling {r['tiling']}, context {r['context_px']} px; predict "
              f"seconds: " + ", ".join(f"{k} {v['seconds']}" for k, v in r["cells"].items()
                                       if "seconds" in v))


def parse_args() -> argparse.Namespace:
    """The command-line arguments (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", default=None,
                    help="bundled model name or model file (repeatable)")
    ap.add_argument("--runtime", default="torch", help="PredictConfig.runtime, every model")
    ap.add_argument("--precision", default="fp32", help="PredictConfig.precision")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    if a.model is None:
        a.model = ["buildings-atlanta"] + ([str(AUGMENTED)] if AUGMENTED.exists() else [])
    return a


def main() -> None:
    """Make the resampled copies, measure every model and print the table."""
    a = parse_args()
    import torch

    from geounet.config import PredictConfig

    config = PredictConfig(device="cpu", runtime=a.runtime, precision=a.precision)
    work = Path(a.workdir or tempfile.mkdtemp(prefix="geounet-augmentation-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"geounet augmentation benchmark - python {' '.join(sys.argv)}")
    print(f"CPU: {runtimes.cpu_line()}; torch {torch.__version__}")
    print(f"every model: runtime {a.runtime}, precision {a.precision}, device cpu, its own "
          f"tiling; scene {CHIP.name}, truth {LABELS.name}; work folder {work}")
    sys.stdout.flush()
    t0 = time.perf_counter()
    copies = {g: copy_at(work / f"atlanta_{g}m.tif", g) for g in GSDS}
    rows = [measure_model(spec, label, copies, work, config)
            for spec, label in zip(a.model, labels_of(a.model), strict=True)]
    print_table(rows)
    print(f"\n{time.perf_counter() - t0:.0f} s in all")
    if a.json:
        Path(a.json).write_text(json.dumps({"rows": rows, "args": vars(a)}, indent=1,
                                           default=str))


if __name__ == "__main__":
    main()
