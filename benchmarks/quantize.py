"""geounet benchmarks: reduced precision on the ONNX runtimes (int8, bf16, fp16) side by side.

Usage:
    python benchmarks/quantize.py [--reps 8] [--warmup 2] [--batch 4] [--tiles 16]
        [--models buildings-atlanta,landcover-landsat7] [--workdir DIR] [--json OUT.json]

Quick run: ``python benchmarks/quantize.py --reps 2 --warmup 1 --tiles 4``.

Everything is measured in one run, on this machine. Per bundled model, on its
own sample scene (``buildings-atlanta``: the Atlanta chip, calibrated on its
western two thirds only, so the held-out eastern third stays unseen;
``landcover-landsat7``: the Raleigh Landsat scene, calibrated on all of it: its
held-out part is polygons, whose pixels the model saw unlabelled in training):

1. the graphs: the model's fp32 ONNX graph (the one shipped beside it), int8
   by :func:`geounet.quantize.quantize_model` (QDQ, static MinMax calibration on
   ``--tiles`` tiles, per-channel weights, input convs fp32; also per-tensor
   weights), int8 by onnxruntime's ``quantize_dynamic`` (ConvInteger, no
   calibration), and an fp16 graph (onnxruntime's ``convert_float_to_float16``,
   fp32 input and output), with the seconds each took to make;
2. model only: one batch of ``--batch`` real tiles of the graph's size through
   geounet's predictor of each setting (``make_predictor``; onnxruntime and
   OpenVINO, OpenVINO also with ``precision="bf16"``, its
   ``INFERENCE_PRECISION_HINT``), median of ``--reps`` batches after
   ``--warmup`` untimed rounds, settings taking turns, each timed batch right
   after an untimed one of the same setting (onnxruntime's idle threads spin
   for a while after a run: measured, an OpenVINO batch right after an
   onnxruntime one ran at 0.65 Mpx/s, after a 0.2 s pause at 1.06, after its
   own batch at 1.17), in Mpx/s of model input; for OpenVINO also the hint it
   compiled with and the precisions its Convolution layers run in
   (``runtimePrecision`` of the runtime model), which says whether int8 or
   bf16 kernels run at all;
3. on the whole scene (``geounet.predict``): max |dp| and the share of valid
   pixels whose class equals onnxruntime fp32's, and the held-out figures as
   ``geounet evaluate`` computes them (``--region east:0.333`` on the
   footprints; ``--held-out-of`` on the land-cover polygons);
4. the CPU flags that matter (avx2, avx512f, avx512_bf16, amx, vnni), the
   library versions and the CPU time other processes used during the run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import runtimes  # benchmarks/ is not a package: its CPU and load helpers

DATA = Path(__file__).resolve().parents[1] / "examples" / "data"
MODELS = {
    "buildings-atlanta": {"scene": DATA / "atlanta_sample.tif", "region": "west:0.667",
                          "labels": DATA / "atlanta_buildings.geojson",
                          "eval_region": "east:0.333"},
    "landcover-landsat7": {"scene": DATA / "landsat_raleigh.tif", "region": None,
                           "labels": DATA / "landsat_landcover.shp", "eval_region": None},
}
SETTINGS = [  # (label, runtime, graph, precision)
    ("onnxruntime fp32", "onnxruntime", "fp32", "auto"),
    ("onnxruntime int8", "onnxruntime", "int8", "auto"),
    ("onnxruntime int8 per-tensor", "onnxruntime", "int8_tensor", "auto"),
    ("onnxruntime int8 dynamic", "onnxruntime", "int8_dynamic", "auto"),
    ("onnxruntime fp16 graph", "onnxruntime", "fp16", "auto"),
    ("OpenVINO fp32", "openvino", "fp32", "auto"),
    ("OpenVINO int8", "openvino", "int8", "auto"),
    ("OpenVINO int8 per-tensor", "openvino", "int8_tensor", "auto"),
    ("OpenVINO bf16 hint", "openvino", "fp32", "bf16"),
]
FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni")


def cpu_line() -> str:
    """The CPU model and its avx2/avx512f/avx512_bf16/amx/vnni flags (``/proc/cpuinfo``)."""
    return runtimes.cpu_line(FLAGS)


def versions_line() -> str:
    """Versions of onnxruntime, OpenVINO and onnx."""
    parts = []
    for name in ("onnxruntime", "openvino", "onnx"):
        try:
            parts.append(f"{name} {__import__(name).__version__}")
        except ImportError:
            parts.append(f"{name} not installed")
    return ", ".join(parts)


def own_cpu_s() -> float:
    """CPU seconds of this process."""
    t = os.times()
    return t.user + t.system


def make_graphs(name: str, spec: dict, work: Path, n_tiles: int) -> tuple[dict, dict]:
    """The graphs of one model: ``{key: path}`` and ``{key: seconds to make}``."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.float16 import convert_float_to_float16

    from geounet.models.modelfile import load_model
    from geounet.onnx_cache import onnx_graph
    from geounet.quantize import QuantizeOptions, quantize_model

    loaded = load_model(name)
    graphs = {"fp32": onnx_graph(loaded, loaded.metadata.tile_size_px)}
    seconds = {"fp32": 0.0}
    for key, per_channel in (("int8", True), ("int8_tensor", False)):
        t0 = time.perf_counter()
        opts = QuantizeOptions(n_tiles=n_tiles, region=spec["region"], per_channel=per_channel)
        graphs[key] = quantize_model(loaded, spec["scene"], work / f"{name}-{key}.onnx",
                                     options=opts, overwrite=True)
        seconds[key] = time.perf_counter() - t0
    t0 = time.perf_counter()
    graphs["int8_dynamic"] = work / f"{name}-int8_dynamic.onnx"
    logging.disable(logging.WARNING)  # it logs the graph's shapes when asked to pre-process
    try:
        quantize_dynamic(str(graphs["fp32"]), str(graphs["int8_dynamic"]),
                         weight_type=QuantType.QInt8)
    finally:
        logging.disable(logging.NOTSET)
    seconds["int8_dynamic"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    graphs["fp16"] = work / f"{name}-fp16.onnx"
    onnx.save(convert_float_to_float16(onnx.load(str(graphs["fp32"])), keep_io_types=True),
              str(graphs["fp16"]))
    seconds["fp16"] = time.perf_counter() - t0
    return graphs, seconds


def openvino_precisions(predictor) -> str:
    """The compiled hint and the Convolution layers' runtime precisions of an OpenVINO predictor."""
    compiled = getattr(predictor, "compiled", None)
    if compiled is None:
        return ""
    counts: dict[str, int] = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if "layerType" in info and info["layerType"].astype(str) == "Convolution":
            prec = info["runtimePrecision"].astype(str)
            counts[prec] = counts.get(prec, 0) + 1
    hint = compiled.get_property("INFERENCE_PRECISION_HINT")
    convs = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    return f"hint {getattr(hint, 'to_string', lambda: hint)()}; convs {convs}"


def model_only(name: str, spec: dict, graphs: dict, a) -> list[dict]:
    """Mpx/s of each setting on one batch of real tiles, settings taking turns rep by rep."""
    from geounet.config import PredictConfig
    from geounet.models.modelfile import load_model
    from geounet.pipeline.predictors import make_predictor
    from geounet.quantize import QuantizeOptions, calibration_tiles

    meta = load_model(name).metadata
    x = calibration_tiles(spec["scene"], meta, meta.tile_size_px,
                          options=QuantizeOptions(n_tiles=a.batch, seed=1))
    rows = []
    for label, runtime, key, precision in SETTINGS:
        config = PredictConfig(device="cpu", runtime=runtime, precision=precision)
        pred = make_predictor(load_model(graphs[key]), config)
        pred(x)
        rows.append({"model": name, "setting": label, "runtime": runtime, "graph": key,
                     "precision": precision, "fn": pred, "times": [],
                     "openvino": openvino_precisions(getattr(pred, "base", pred))})
    for _ in range(a.warmup):
        for r in rows:
            r["fn"](x)
    for _ in range(a.reps):
        for r in rows:
            r["fn"](x)  # untimed: lets the previous setting's onnxruntime threads stop spinning
            t0 = time.perf_counter()
            r["fn"](x)
            r["times"].append(time.perf_counter() - t0)
    for r in rows:
        r["mpx_s"] = x.shape[0] * x.shape[2] * x.shape[3] / statistics.median(r["times"]) / 1e6
        del r["fn"]
    return rows


def held_out(name: str, spec: dict, graph: Path, mask: Path) -> dict:
    """The held-out figures of a class raster, as ``geounet evaluate`` computes them."""
    from geounet.evaluation import evaluate

    if spec["eval_region"]:
        res = evaluate(mask, spec["labels"], region=spec["eval_region"])
        assert res.pixel is not None and res.buildings is not None
        return {"pixel_iou": res.pixel.iou, "pixel_f1": res.pixel.f1,
                "building_f1": res.buildings.f1}
    res = evaluate(mask, spec["labels"], held_out_of=graph)
    assert res.classes is not None
    f1s = [v["f1"] for v in res.classes.per_class.values()
           if v["support_px"] and v["f1"] is not None]
    return {"overall_accuracy": res.classes.overall_accuracy, "mean_iou": res.classes.mean_iou,
            "mean_f1": float(np.mean(f1s))}


def whole_scene(name: str, spec: dict, graphs: dict, rows: list[dict], work: Path) -> None:
    """Add max |dp|, class agreement with onnxruntime fp32 and held-out figures to ``rows``."""
    import geounet
    from geounet.config import OutputConfig, PredictConfig

    ref = None
    for r in rows:
        mask = work / f"{name}-{r['runtime']}-{r['graph']}-{r['precision']}.tif"
        res = geounet.predict(spec["scene"], None, model=graphs[r["graph"]], keep_arrays=True,
                              mask_out=mask, outputs=OutputConfig(overwrite=True),
                              predict=PredictConfig(device="cpu", runtime=r["runtime"],
                                                    precision=r["precision"]))
        if ref is None:
            ref = res
        valid = ref.classes != 255
        diff = np.abs(res.probs - ref.probs)
        r["max_dp"] = float(np.nanmax(diff))
        r["share_dp_over_0.1"] = float(np.nanmean(diff > 0.1))
        r["agree"] = float(np.mean(res.classes[valid] == ref.classes[valid]))
        r["held_out"] = held_out(name, spec, graphs[r["graph"]], mask)


def print_rows(rows: list[dict], seconds: dict) -> None:
    """One markdown table per model."""
    first = rows[0]
    keys = list(first["held_out"])
    fp32 = {r["runtime"]: r["mpx_s"] for r in rows if r["graph"] == "fp32"
            and r["precision"] == "auto"}
    print(f"\n{first['model']}\n")
    print("| setting | Mpx/s | x fp32 same runtime | max \\|dp\\| | px with \\|dp\\| > 0.1 | "
          "classes agree | " + " | ".join(keys) + " | make s | OpenVINO ran |")
    print("|---" * (8 + len(keys)) + "|")
    for r in rows:
        figs = " | ".join(f"{r['held_out'][k]:.4f}" for k in keys)
        print(f"| {r['setting']} | {r['mpx_s']:.3f} | {r['mpx_s'] / fp32[r['runtime']]:.2f} | "
              f"{r['max_dp']:.4f} | {100 * r['share_dp_over_0.1']:.3f} % | "
              f"{100 * r['agree']:.3f} % | {figs} | {seconds[r['graph']]:.1f} | "
              f"{r['openvino'] or '-'} |")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=8, help="timed batches per setting")
    ap.add_argument("--warmup", type=int, default=2, help="untimed rounds before timing")
    ap.add_argument("--batch", type=int, default=4, help="tiles per batch")
    ap.add_argument("--tiles", type=int, default=16, help="calibration tiles")
    ap.add_argument("--models", default=",".join(MODELS), help="bundled model names")
    ap.add_argument("--workdir", default=None, help="folder for graphs and rasters")
    ap.add_argument("--json", default=None, help="also write the figures as JSON")
    return ap.parse_args(argv)


def main() -> None:
    """Run the measurements and print them."""
    a = parse_args()
    work = Path(a.workdir or tempfile.mkdtemp(prefix="geounet-quantize-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("GEOUNET_CACHE_DIR", str(work / "cache"))
    print(cpu_line())
    print(versions_line())
    print(f"model only: batch {a.batch}, median of {a.reps} after {a.warmup} warm-up rounds; "
          f"calibration: {a.tiles} tiles")
    busy0, own0, t0 = runtimes.machine_busy_s(), own_cpu_s(), time.perf_counter()
    out = []
    for name in a.models.split(","):
        spec = MODELS[name]
        graphs, seconds = make_graphs(name, spec, work, a.tiles)
        rows = model_only(name, spec, graphs, a)
        whole_scene(name, spec, graphs, rows, work)
        print_rows(rows, seconds)
        out += [dict(r, make_s=seconds[r["graph"]]) for r in rows]
    wall = time.perf_counter() - t0
    other = runtimes.machine_busy_s() - busy0 - (own_cpu_s() - own0)
    print(f"\nCPU time of other processes during the run: {other:.1f} s in {wall:.0f} s x "
          f"{os.cpu_count()} CPU ({100 * other / (wall * (os.cpu_count() or 1)):.0f} %)")
    if a.json:
        Path(a.json).write_text(json.dumps({"cpu": cpu_line(), "versions": versions_line(),
                                            "rows": out}, indent=2, default=str))


if __name__ == "__main__":
    main()
