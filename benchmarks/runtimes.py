"""geounet benchmarks: the runtimes (torch, onnxruntime, OpenVINO, auto) side by side.

Usage:
    python benchmarks/runtimes.py [--sizes 4096,8192] [--reps 6] [--warmup 2] [--tile 512]
        [--batch 4] [--tile-size 512] [--overlap 64] [--device cpu] [--models NAMES]
        [--keep-arrays] [--workdir DIR] [--json OUT.json]

Quick run (well under 2 minutes on the 2-core CI machine kind):
    python benchmarks/runtimes.py --sizes 1024 --reps 2

Everything is measured in one run, on this machine. The ONNX runtimes run the
model's ONNX export, cached (:mod:`geounet.onnx_cache`) in a fresh folder
under the work folder (``GEOUNET_CACHE_DIR``): each model is exported once per
tile size, timed on its own ("ONNX export"; none where the graph shipped
beside the model has the tile size, as the bundled models' have at 256 and
128 px). It prints:

1. the CPU model, the CPU flags that matter for these runtimes (avx2,
   avx512f, avx512_bf16, amx_*) and the library versions;
2. model only, in this process: one batch of ``--batch`` tiles of ``--tile``
   px through each setting's predictor (``make_predictor``): the median of
   ``--reps`` timed batches after one warm-up batch and ``--warmup`` untimed
   rounds (a model's settings take turns rep by rep, so drift of the
   machine's speed hits them alike), in Mpx/s of model input, and the speed
   ratio to torch fp32 channels_last (geounet's default); each setting runs
   its own copy of the module. Settings: torch fp32 channels_last, torch fp32
   NCHW, onnxruntime fp32, OpenVINO fp32. Models: the bundled ``buildings-atlanta`` on real
   tiles of the Atlanta chip (scaled with the model's band mean/std as
   ``BandScaler`` does), the bundled ``landcover-landsat7`` and an smp
   Unet-resnet34 with 3 bands and random weights (both on random normal
   input). Per setting also the largest ``|p - p_torch|`` and the share of
   pixels whose class (threshold / argmax) is torch fp32 channels_last's, on
   the same input;
3. end to end, each run in a fresh child process (peak RSS is the child's own
   ``VmHWM``, see :func:`peak_rss_mb`): ``geounet.predict`` with
   ``buildings-atlanta`` on mosaics of mirrored copies of the Atlanta chip
   (``run.make_atlanta_mosaic``), writing a GeoPackage and a class raster, for
   runtimes torch, onnxruntime, openvino and auto. The model is loaded before
   the clock starts; the ONNX graph is already in the cache, but creating the
   onnxruntime session or compiling the OpenVINO model is inside the timed
   call, as in any run. Columns: wall seconds, scene Mpx/s, peak RSS, the
   speed ratio to torch end to end, ``e2e/model`` (the time the same
   runtime's model alone needs for the scene's tiles at the model-only Mpx/s
   above, over the wall time: run.py's ratio; approximate unless
   ``--tile-size`` is ``--tile``) and the share of class-raster pixels equal
   to torch's;
4. the CPU time other processes used during the run (the figures are those
   of a quiet machine only when it is small).
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))

CHIP = HERE.parents[1] / "examples" / "data" / "atlanta_sample.tif"
SMP_NAME = "smp-resnet34"
SETTINGS = [  # (label, runtime, channels_last)
    ("torch fp32 channels_last", "torch", True),
    ("torch fp32 NCHW", "torch", False),
    ("onnxruntime fp32", "onnxruntime", None),
    ("openvino fp32", "openvino", None),
]
E2E_RUNTIMES = ("torch", "onnxruntime", "openvino", "auto")


# ---------------------------------------------------------------- machine


def cpu_line(names: tuple[str, ...] = ("avx2", "avx512f", "avx512_bf16")) -> str:
    """The CPU model and the flags that matter here, from ``/proc/cpuinfo``.

    Args:
        names: The flags shown yes/no (any ``amx_*`` flags are always shown).

    Returns:
        One line, e.g. ``AMD EPYC, 2 CPU: avx2 yes, avx512f yes, ...``.
    """
    model, flags = "", set[str]()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not model:
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    shown = [f"{f} {'yes' if f in flags else 'no'}" for f in names]
    amx = sorted(f for f in flags if f.startswith("amx"))
    shown.append(f"amx {'/'.join(amx) if amx else 'no'}")
    return f"{model or platform.machine()}, {os.cpu_count()} CPU: {', '.join(shown)}"


def versions_line() -> str:
    """Versions of the libraries that run the models.

    Returns:
        One line with torch (and its thread count), onnxruntime, openvino, onnx.
    """
    import torch

    parts = [f"torch {torch.__version__} ({torch.get_num_threads()} threads)"]
    for name in ("onnxruntime", "openvino", "onnx"):
        try:
            parts.append(f"{name} {__import__(name).__version__}")
        except ImportError:
            parts.append(f"{name} not installed")
    return ", ".join(parts)


def machine_busy_s() -> float:
    """CPU seconds all processes have used since boot (``/proc/stat``; 0 where absent)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    """CPU seconds of this process and its finished children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def peak_rss_mb() -> float:
    """Peak resident set size of this process's program in MiB.

    ``VmHWM`` of ``/proc/self/status`` where there is one: Linux carries
    ``ru_maxrss`` across ``exec``, so a child started by this (large) parent
    would report at least the parent's RSS at the fork (measured: 1933 MB for a
    child of a 2 GB parent whose own VmHWM was 11 MB).

    Returns:
        MiB.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# ---------------------------------------------------------------- inputs


def mirrored_mosaic(chip: np.ndarray, size: int) -> np.ndarray:
    """A ``size`` x ``size`` mosaic of mirrored copies of a 2-D chip (as run.py's scenes).

    Args:
        chip: ``(h, w)`` array.
        size: Side of the mosaic in pixels.

    Returns:
        ``(size, size)`` array of the chip's dtype.
    """
    flipped = np.concatenate([chip, chip[:, ::-1]], axis=1)
    flipped = np.concatenate([flipped, flipped[::-1]], axis=0)
    reps = -(-size // flipped.shape[0]), -(-size // flipped.shape[1])
    return np.tile(flipped, reps)[:size, :size]


def atlanta_tiles(meta, batch: int, tile: int) -> np.ndarray:
    """Real tiles of the Atlanta chip, scaled with the model's band mean and std.

    Args:
        meta: The model's :class:`~geounet.models.ModelMetadata` (one band).
        batch: Number of tiles.
        tile: Tile side in pixels.

    Returns:
        ``(batch, 1, tile, tile)`` float32, nodata pixels 0 as ``BandScaler`` sets them.
    """
    import rasterio

    from geounet.io.read import BandScaler

    with rasterio.open(CHIP) as ds:
        chip, nodata = ds.read(1), ds.nodata
    per_row = int(np.ceil(np.sqrt(batch)))
    mosaic = mirrored_mosaic(chip, per_row * tile)
    scaler = BandScaler(meta.band_mean, meta.band_std)
    out = []
    for i in range(batch):
        r, c = (i // per_row) * tile, (i % per_row) * tile
        raw = mosaic[r : r + tile, c : c + tile].astype(np.float32)
        valid = raw != nodata if nodata is not None else np.ones(raw.shape, bool)
        out.append(scaler(raw[None], valid))
    return np.stack(out).astype(np.float32)


def model_input(meta, batch: int, tile: int) -> tuple[np.ndarray, str]:
    """The model-only input: real Atlanta tiles for a 1-band model, else random normal.

    Args:
        meta: The model's metadata.
        batch: Number of tiles.
        tile: Tile side in pixels.

    Returns:
        ``(x, kind)``: ``(batch, c, tile, tile)`` float32 and ``"real"`` or ``"random"``.
    """
    if meta.in_channels == 1:
        return atlanta_tiles(meta, batch, tile), "real"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, meta.in_channels, tile, tile)).astype(np.float32)
    return x, "random"


def load_models(names: list[str], work: Path) -> dict:
    """Load the benchmark's models by name (the smp model is made and saved first).

    Args:
        names: Bundled model names and/or ``smp-resnet34``.
        work: Work folder for the smp model file.

    Returns:
        ``{name: LoadedModel}``.
    """
    from run import make_model

    from geounet.models import load_model

    out = {}
    for name in names:
        if name == SMP_NAME:
            path = work / f"{SMP_NAME}.safetensors"
            if not path.exists():
                make_model(path, SMP_NAME)  # build_model("smp_unet", 3, 1, encoder_name=...)
            out[name] = load_model(path)
        else:
            out[name] = load_model(name)
    return out


# ---------------------------------------------------------------- model only


def classes_of(probs: np.ndarray, threshold: float) -> np.ndarray:
    """Classes of ``(b, k, h, w)`` probabilities: threshold for k == 1, else argmax."""
    if probs.shape[1] == 1:
        return probs[:, 0] >= threshold
    return probs.argmax(axis=1)


def build_predictors(loaded, x: np.ndarray, device: str) -> list[dict]:
    """One predictor per setting of :data:`SETTINGS`, each built and warmed up once.

    Args:
        loaded: The model.
        x: ``(b, c, t, t)`` float32 input.
        device: ``PredictConfig.device``.

    Returns:
        ``{"setting", "runtime", "predictor", "setup_s", "first_s", "probs"}``
        per setting; ``setup_s`` is ``make_predictor`` (for the ONNX runtimes:
        the cache look-up and the session or compiled model), ``first_s`` the
        first (warm-up) batch, ``probs`` its output.
    """
    from geounet.config import PredictConfig
    from geounet.models.modelfile import LoadedModel
    from geounet.pipeline.predictors import make_predictor

    out = []
    for label, runtime, channels_last in SETTINGS:
        # torch's Predictor converts its module to channels_last in place: each setting
        # gets its own copy, or "NCHW" would run channels_last weights
        own = LoadedModel(copy.deepcopy(loaded.module), loaded.metadata, loaded.path,
                          loaded.format)
        config = PredictConfig(device=device, batch_size=x.shape[0], precision="fp32",
                               channels_last=channels_last, runtime=runtime)
        t0 = time.perf_counter()
        predictor = make_predictor(own, config, x.shape[-1])
        setup = time.perf_counter() - t0
        probs = predictor(x)
        out.append({"setting": label, "runtime": runtime, "predictor": predictor,
                    "setup_s": setup, "first_s": time.perf_counter() - t0 - setup,
                    "probs": probs})
    return out


def time_predictors(entries: list[dict], x: np.ndarray, reps: int, warmup: int) -> None:
    """Time each predictor on ``x``, interleaved rep by rep; sets ``batch_s`` (median).

    Interleaving spreads any drift of the machine's speed (other work, clock
    changes) over all settings alike. The untimed rounds first matter for
    torch: after one warm-up batch its next one or two were still up to 3x
    slower (landcover-landsat7, 512 px) once the other runtimes had run.

    Args:
        entries: From :func:`build_predictors`.
        x: ``(b, c, t, t)`` float32 input.
        reps: Timed batches per setting.
        warmup: Untimed interleaved rounds before them.
    """
    for e in entries:
        e["times"] = []
    for i in range(warmup + reps):
        for e in entries:
            t0 = time.perf_counter()
            e["predictor"](x)
            if i >= warmup:
                e["times"].append(time.perf_counter() - t0)
    for e in entries:
        e["batch_s"] = statistics.median(e["times"])


def model_only(models: dict, a) -> list[dict]:
    """Model-only throughput and agreement with torch, per model and runtime setting.

    Args:
        models: ``{name: LoadedModel}``.
        a: The command-line arguments.

    Returns:
        One row per (model, setting); the first setting of each model is the
        reference of ``speedup``, ``max_dp`` and ``agree``.
    """
    from geounet.onnx_cache import onnx_graph

    rows = []
    for name, loaded in models.items():
        meta = loaded.metadata
        x, kind = model_input(meta, a.batch, a.tile)
        mpx = x.shape[0] * x.shape[-1] * x.shape[-2] / 1e6
        t0 = time.perf_counter()
        onnx_graph(loaded, a.tile)  # the export, timed apart from the ONNX runtimes' setup
        export_s = time.perf_counter() - t0
        entries = build_predictors(loaded, x, a.device)
        time_predictors(entries, x, a.reps, a.warmup)
        ref = entries[0]
        ref_cls = classes_of(ref["probs"], meta.threshold)
        for e in entries:
            cls = classes_of(e["probs"], meta.threshold)
            rows.append({"model": name, "input": kind, "setting": e["setting"],
                         "runtime": e["runtime"], "export_s": export_s, "setup_s": e["setup_s"],
                         "first_s": e["first_s"],
                         "batch_s": e["batch_s"], "times_s": e["times"],
                         "mpx_s": mpx / e["batch_s"],
                         "speedup": ref["batch_s"] / e["batch_s"],
                         "max_dp": float(np.abs(e["probs"] - ref["probs"]).max()),
                         "agree": float(np.mean(cls == ref_cls)),
                         "differ_px": int(np.sum(cls != ref_cls))})
            print(f"  model only {name} {e['setting']}: {rows[-1]['mpx_s']:.3f} Mpx/s",
                  file=sys.stderr, flush=True)
        del entries
        gc.collect()
    return rows


# ---------------------------------------------------------------- end to end (children)


def child_e2e(a) -> dict:
    """One end-to-end ``geounet.predict`` in this (fresh) process.

    Args:
        a: The command-line arguments (``scene``, ``out``, ``mask``, ``runtime``, ...).

    Returns:
        Wall time, tiles, polygons, peak RSS and the runtime ``auto`` chose.
    """
    import geounet
    from geounet._alloc import tune_allocator
    from geounet.config import OutputConfig, PredictConfig, TilingConfig
    from geounet.models import load_model
    from geounet.pipeline.predictors import choose_runtime

    tune_allocator()
    loaded = load_model("buildings-atlanta")
    config = PredictConfig(device=a.device, batch_size=a.batch, runtime=a.runtime)
    t0 = time.perf_counter()
    r = geounet.predict(a.scene, a.out, model=loaded,
                        tiling=TilingConfig(a.tile_size, a.overlap), predict=config,
                        mask_out=a.mask, outputs=OutputConfig(overwrite=True),
                        keep_arrays=a.keep_arrays)
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "tiles": r.tiles_predicted, "polygons": r.n_polygons,
            "rss_mb": peak_rss_mb(), "chosen": choose_runtime(loaded, config)[0]}


def run_child(**kw) -> dict:
    """Run :func:`child_e2e` in a fresh Python process and return its JSON result.

    Args:
        **kw: Command-line options of the child (``True`` is a bare flag).

    Returns:
        The child's result.

    Raises:
        RuntimeError: if the child fails (with the end of its stderr).
    """
    args = [sys.executable, str(HERE), "--child"]
    for k, v in kw.items():
        if v is True:
            args.append(f"--{k.replace('_', '-')}")
        elif v is not False:
            args += [f"--{k.replace('_', '-')}", str(v)]
    out = subprocess.run(args, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"end-to-end child {kw} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def class_agreement(path: Path, ref: Path) -> float:
    """Share of valid pixels of ``ref``'s class raster that ``path``'s has too."""
    import rasterio

    with rasterio.open(path) as a, rasterio.open(ref) as b:
        got, want = a.read(1), b.read(1)
    valid = (want != 255) | (got != 255)
    return float(np.mean(got[valid] == want[valid])) if valid.any() else 1.0


def end_to_end(a, work: Path, model_rates: dict) -> list[dict]:
    """End-to-end runs per scene size and runtime, each in a fresh process.

    Args:
        a: The command-line arguments.
        work: Work folder for scenes and outputs.
        model_rates: ``{runtime: model-only Mpx/s}`` of buildings-atlanta.

    Returns:
        One row per (size, runtime).
    """
    from run import make_atlanta_mosaic

    from geounet.models import load_model
    from geounet.onnx_cache import onnx_graph

    onnx_graph(load_model("buildings-atlanta"), a.tile_size)  # export before any clock
    rows = []
    for size in [int(s) for s in a.sizes.split(",") if s]:
        scene = work / f"atlanta_{size}.tif"
        if not scene.exists():
            make_atlanta_mosaic(scene, size)
        mpx = size * size / 1e6
        by_runtime = {}
        for runtime in E2E_RUNTIMES:
            r = run_child(scene=scene, out=work / f"e2e_{size}_{runtime}.gpkg",
                          mask=work / f"e2e_{size}_{runtime}_classes.tif", runtime=runtime,
                          device=a.device, batch=a.batch, tile_size=a.tile_size,
                          overlap=a.overlap, keep_arrays=a.keep_arrays)
            r.update(size=size, runtime=runtime, mpx_s=mpx / r["wall_s"])
            rate = model_rates.get(r["chosen"])
            model_s = r["tiles"] * a.tile_size ** 2 / 1e6 / rate if rate else float("nan")
            r["e2e_model"] = model_s / r["wall_s"]
            by_runtime[runtime] = r
            print(f"  end to end {size} {runtime}: {r['wall_s']:.1f} s", file=sys.stderr,
                  flush=True)
        torch_row = by_runtime["torch"]
        for r in by_runtime.values():
            r["x_torch"] = torch_row["wall_s"] / r["wall_s"]
            r["agree"] = class_agreement(work / f"e2e_{size}_{r['runtime']}_classes.tif",
                                         work / f"e2e_{size}_torch_classes.tif")
            rows.append(r)
    return rows


# ---------------------------------------------------------------- report


def print_model_only(rows: list[dict], a) -> None:
    """Print the model-only table."""
    print(f"\nModel only: one batch of {a.batch} tiles of {a.tile} px, median of {a.reps} "
          f"batches after 1 + {a.warmup} warm-up, settings in turn; x torch and agreement "
          "against torch fp32 channels_last (threshold / argmax), same input")
    print(f"{'model':<19} {'input':<6} {'setting':<25} {'setup s':>7} {'first s':>7} {'Mpx/s':>7} "
          f"{'x torch':>7} {'max |dp|':>9} {'class agree %':>13} {'differ px':>9}")
    for r in rows:
        print(f"{r['model']:<19} {r['input']:<6} {r['setting']:<25} {r['setup_s']:>7.2f} "
              f"{r['first_s']:>7.2f} {r['mpx_s']:>7.3f} {r['speedup']:>7.2f} {r['max_dp']:>9.2e} "
              f"{100 * r['agree']:>13.4f} {r['differ_px']:>9}")
    exports = {r["model"]: r["export_s"] for r in rows}
    print("setup s: make_predictor (ONNX runtimes: session / compiled model from the cached "
          "graph); first s: the first batch (untimed warm-up); ONNX export, once per model "
          "and tile size (0 where the graph shipped beside the model has this tile size): "
          + ", ".join(f"{m} {t:.2f} s" for m, t in exports.items()))


def print_e2e(rows: list[dict], a) -> None:
    """Print the end-to-end table and its ratios."""
    print(f"\nEnd to end: buildings-atlanta on Atlanta mosaics, tiles {a.tile_size}/{a.overlap} "
          f"px, batch {a.batch}, .gpkg + class raster, one fresh process each"
          + (" (keep_arrays)" if a.keep_arrays else ""))
    print(f"{'scene':>7} {'runtime':<18} {'tiles':>5} {'polygons':>8} {'wall s':>7} "
          f"{'Mpx/s':>7} {'peak RSS MB':>11} {'x torch':>7} {'e2e/model':>9} "
          f"{'class agree %':>13}")
    for r in rows:
        name = r["runtime"] + (f" ({r['chosen']})" if r["runtime"] == "auto" else "")
        print(f"{r['size']:>6}² {name:<18} {r['tiles']:>5} {r['polygons']:>8} "
              f"{r['wall_s']:>7.2f} {r['mpx_s']:>7.3f} {r['rss_mb']:>11.0f} "
              f"{r['x_torch']:>7.2f} {r['e2e_model']:>9.3f} {100 * r['agree']:>13.4f}")
    print("x torch: torch's wall time / this one. e2e/model: the time the same runtime's "
          "model alone needs for these tiles (its model-only Mpx/s above) / this wall time"
          + (f"; approximate: model only ran tiles of {a.tile} px, not {a.tile_size}"
             if a.tile_size != a.tile else ""))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command-line arguments (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="4096,8192", help="end-to-end scene sides, px")
    ap.add_argument("--reps", type=int, default=6, help="timed model-only batches")
    ap.add_argument("--warmup", type=int, default=2,
                    help="untimed model-only rounds (after each setting's first batch)")
    ap.add_argument("--tile", type=int, default=512, help="model-only tile side, px")
    ap.add_argument("--batch", type=int, default=4, help="tiles per batch (both parts)")
    ap.add_argument("--tile-size", type=int, default=512, help="end-to-end tile side, px")
    ap.add_argument("--overlap", type=int, default=64, help="end-to-end tile overlap, px")
    ap.add_argument("--device", default="cpu", help="PredictConfig.device (default cpu)")
    ap.add_argument("--models", default=f"buildings-atlanta,landcover-landsat7,{SMP_NAME}",
                    help="comma-separated bundled model names and/or smp-resnet34")
    ap.add_argument("--keep-arrays", action="store_true",
                    help="end to end with keep_arrays=True (adds the scene's arrays to RSS)")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    for name in ("--scene", "--out", "--mask", "--runtime"):
        ap.add_argument(name, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main() -> None:
    """Run the benchmark and print the tables."""
    a = parse_args()
    if a.child:
        print(json.dumps(child_e2e(a)))
        return
    from geounet._alloc import tune_allocator

    tune_allocator()
    work = Path(a.workdir or tempfile.mkdtemp(prefix="geounet-runtimes-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["GEOUNET_CACHE_DIR"] = str(work / "cache")  # children inherit it
    (work / "cache").mkdir(exist_ok=True)
    print(f"geounet runtimes benchmark - {platform.node()}, Python {platform.python_version()}")
    print(f"CPU: {cpu_line()}")
    print(f"libraries: {versions_line()}; device {a.device}; ONNX cache {work / 'cache'}")
    sys.stdout.flush()
    busy0, own0, t0 = machine_busy_s(), own_cpu_s(), time.perf_counter()
    models = load_models([m for m in a.models.split(",") if m], work)
    mo_rows = model_only(models, a)
    rates = {r["runtime"]: r["mpx_s"] for r in reversed(mo_rows)  # first row per runtime
             if r["model"] == "buildings-atlanta"}
    e2e_rows = end_to_end(a, work, rates) if a.sizes.strip(", ") else []
    print_model_only(mo_rows, a)
    if e2e_rows:
        print_e2e(e2e_rows, a)
    other = machine_busy_s() - busy0 - (own_cpu_s() - own0)
    wall = time.perf_counter() - t0
    print(f"\nCPU time of other processes during the run: {other:.1f} s in {wall:.0f} s x "
          f"{os.cpu_count()} CPU ({100 * other / (wall * (os.cpu_count() or 1)):.0f} %; "
          "more than a few % means the figures are not those of a quiet machine)")
    if a.json:
        Path(a.json).write_text(json.dumps({"model_only": mo_rows, "end_to_end": e2e_rows,
                                            "args": vars(a)}, indent=2, default=str))


if __name__ == "__main__":
    main()
