"""geounet benchmarks: geounet against geoai-py on the same model, scene and tiles.

Usage:
    python benchmarks/peers.py [--sizes 4096,8192] [--runtimes torch,auto,onnxruntime,openvino]
        [--reps 1] [--tile-size 512] [--overlap 64] [--batch 4] [--device cpu]
        [--geoai-python PY] [--geoai-plain-malloc] [--geounet-plain-malloc]
        [--no-model-only] [--workdir DIR]
        [--json OUT.json]

Quick run (about a minute on the 2-core CI machine kind):
    python benchmarks/peers.py --sizes 1024

geoai-py is not one of geounet's dependencies (its own pull in leafmap, torchgeo,
transformers and Jupyter); install it in a venv of its own, with geounet, and
run this script with that venv's Python (geoai-py 0.40.1 is the newest release
for Python 3.11)::

    python3 -m venv /work/venv-geoai
    /work/venv-geoai/bin/pip install torch==2.14.1 torchvision==0.29.1
    /work/venv-geoai/bin/pip install geoai-py==0.40.1
    /work/venv-geoai/bin/pip install -e ".[torch,openvino]"
    /work/venv-geoai/bin/python benchmarks/peers.py

(``--geoai-python`` runs only the geoai-py side with another interpreter.)

Both sides run the bundled ``buildings-atlanta`` (the same ``torch.nn.Module``,
from :func:`geounet.models.load_model`; geounet's ONNX runtimes run its ONNX
export, and load the model lazily, as ``geounet.predict`` does) on mosaics of mirrored copies of the
real Atlanta chip (``run.make_atlanta_mosaic``), with the same band scaling,
tiles of ``--tile-size`` px overlapping by ``--overlap`` px, batches of
``--batch`` tiles and a 0.5 threshold:

- **geoai-py**: ``geoai.inference.predict_geotiff`` writing a uint8 mask
  (``preprocess_fn``: geounet's own ``BandScaler`` with the model's band mean
  and std, nodata pixels 0; ``postprocess_fn``: sigmoid of the blended logits,
  then ``>= 0.5``; geoai's default spline blending), then
  ``geoai.utils.raster_to_vector`` of that mask to a GeoPackage
  (``min_area=0``, as geounet's default);
- **geounet**: ``geounet.predict`` to a GeoPackage with a class raster
  (``mask_out``), once per ``--runtimes`` entry.

Every run is a fresh child process; the libraries are imported and the model
loaded before the clock starts (the ONNX export for 512 px tiles is made
before any run, in a fresh ``GEOUNET_CACHE_DIR``; creating the onnxruntime
session or compiling the OpenVINO model is inside the timed call). Peak RSS is
the child's own ``VmHWM`` (``runtimes.peak_rss_mb``); "start RSS" is its RSS
when the clock starts (libraries and model loaded). Both children apply
geounet's glibc allocator settings (``geounet._alloc.tune_allocator``, what the
``geounet`` CLI does) so that the model runs alike in both;
``--geoai-plain-malloc`` and ``--geounet-plain-malloc`` run either side with
glibc's defaults instead, as a Python caller of ``predict_geotiff`` or
``geounet.predict`` gets them (at 8192² on a 2-core AVX2 machine: 2.2x the
time for geoai-py, 1.8x for geounet on torch; docs/performance.md). With
``--reps N`` every (scene, tool) runs N times, taking turns, and the tables
give the medians.

It prints:

1. the CPU model and flags (avx2, avx512f, avx512_bf16, amx_*) and each side's
   library versions;
2. per scene and tool: tiles, polygons, wall seconds (and their range over
   the reps), peak and start RSS, the share of other processes' CPU during the
   run, and the ratios geounet / geoai-py of time and peak RSS (targets: <= 0.4x
   the time and <= 0.25x the peak RSS at 8192²);
3. agreement with geoai-py: the share of equal pixels in the class rasters,
   the IoU of their building pixels, and the ratios of polygon count and total
   polygon area;
4. unless ``--no-model-only``: the model alone on the same number of real
   tiles, as geoai-py runs it (NCHW fp32, ``torch.no_grad``) and as geounet's
   torch runtime does (channels_last fp32, ``torch.inference_mode``), and the
   share of each wall time it accounts for, and the peak RSS of that process
   (what any torch pipeline of this model and batch needs at least).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))

from runtimes import (  # noqa: E402  (benchmarks/ is not a package)
    class_agreement,
    cpu_line,
    machine_busy_s,
    peak_rss_mb,
)

MODEL = "buildings-atlanta"
GEOAI = "geoai"
RUNTIMES = ("torch", "auto", "onnxruntime", "openvino")


# ---------------------------------------------------------------- children (fresh processes)


def rss_now_mb() -> float:
    """Current resident set size of this process in MiB (``VmRSS``; 0 where absent)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def child_versions(extra: tuple[str, ...] = ()) -> dict:
    """Versions of the libraries a child ran with.

    Args:
        extra: More module names to report.

    Returns:
        ``{name: version}``, with GDAL's and torch's thread count.
    """
    import rasterio
    import torch

    out = {"python": platform.python_version(), "torch": torch.__version__,
           "torch_threads": torch.get_num_threads(), "numpy": np.__version__,
           "rasterio": rasterio.__version__, "gdal": rasterio.__gdal_version__}
    for name in ("geounet", "geopandas", "shapely", *extra):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            out[name] = "not installed"
    return out


def geoai_tile_count(height: int, width: int, tile: int, overlap: int) -> int:
    """Number of tiles ``geoai.inference.predict_geotiff`` runs (its own grid, deduplicated)."""
    stride = tile - overlap
    rows = {max(0, min(r + tile, height) - tile) for r in range(0, height, stride)}
    cols = {max(0, min(c + tile, width) - tile) for c in range(0, width, stride)}
    return len(rows) * len(cols)


def geoai_functions(meta):
    """The ``preprocess_fn`` and ``postprocess_fn`` handed to geoai's ``predict_geotiff``.

    Args:
        meta: The model's :class:`~geounet.models.ModelMetadata` (binary, one
            sigmoid channel).

    Returns:
        ``(preprocess, postprocess)``: ``(c, h, w)`` raw float32 tile -> scaled
        float32 as geounet's ``BandScaler`` (pixels equal to the scene's nodata
        in any band become 0); ``(1, H, W)`` blended logits -> ``(1, H, W)``
        uint8 mask (sigmoid ``>= threshold``).
    """
    from geounet.io.read import BandScaler

    scaler = BandScaler(meta.band_mean, meta.band_std)
    nodata = 0.0  # the Atlanta chip's (and so the mosaics') nodata value

    def preprocess(tile: np.ndarray) -> np.ndarray:
        return scaler(tile, np.all(tile != nodata, axis=0))

    def postprocess(logits: np.ndarray) -> np.ndarray:
        probs = 1.0 / (1.0 + np.exp(-logits))
        return (probs >= meta.threshold).astype(np.uint8)

    return preprocess, postprocess


def child_geoai(a) -> dict:
    """geoai-py's ``predict_geotiff`` + ``raster_to_vector`` in this (fresh) process.

    Args:
        a: The command-line arguments (``scene``, ``out``, ``mask``, tiles, ...).

    Returns:
        Wall time (and its two parts), tiles, polygons, peak and start RSS, versions.
    """
    import geopandas  # noqa: F401  (imported before the clock, as geoai.utils does)
    import rasterio
    from geoai.inference import predict_geotiff
    from geoai.utils import raster_to_vector

    from geounet._alloc import tune_allocator
    from geounet.models import load_model

    if not a.geoai_plain_malloc:
        tune_allocator()
    loaded = load_model(MODEL)
    meta = loaded.metadata
    preprocess, postprocess = geoai_functions(meta)
    with rasterio.open(a.scene) as ds:
        tiles = geoai_tile_count(ds.height, ds.width, a.tile_size, a.overlap)
    start_rss = rss_now_mb()
    t0 = time.perf_counter()
    predict_geotiff(loaded.module, str(a.scene), str(a.mask), tile_size=a.tile_size,
                    overlap=a.overlap, batch_size=a.batch, input_bands=list(meta.bands),
                    num_classes=1, output_dtype="uint8", output_nodata=255,
                    preprocess_fn=preprocess, postprocess_fn=postprocess, device=a.device,
                    verbose=False)
    t1 = time.perf_counter()
    gdf = raster_to_vector(str(a.mask), str(a.out), threshold=0, min_area=0)
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "raster_s": t1 - t0, "vector_s": wall - (t1 - t0),
            "tiles": tiles, "polygons": len(gdf), "rss_mb": peak_rss_mb(),
            "start_rss_mb": start_rss, "chosen": "torch",
            "versions": child_versions(("geoai",))}


def child_geounet(a) -> dict:
    """One ``geounet.predict`` with ``a.runtime`` in this (fresh) process.

    Args:
        a: The command-line arguments (``scene``, ``out``, ``mask``, ``runtime``, ...).

    Returns:
        Wall time, tiles, polygons, peak and start RSS, the runtime run, versions.
    """
    import geopandas  # noqa: F401  (imported before the clock, as in the geoai-py child)
    import pyogrio  # noqa: F401

    import geounet
    import geounet.api  # geounet imports its pipeline lazily: before the clock
    from geounet._alloc import tune_allocator
    from geounet.config import OutputConfig, PredictConfig, TilingConfig
    from geounet.models import load_model
    from geounet.pipeline.predictors import choose_runtime

    if not a.geounet_plain_malloc:
        tune_allocator()
    loaded = load_model(MODEL, lazy=True)  # as geounet.predict(model=NAME) loads it
    config = PredictConfig(device=a.device, batch_size=a.batch, runtime=a.runtime)
    chosen = choose_runtime(loaded, config)[0]
    if chosen == "torch":
        _ = loaded.module  # build the torch module before the clock (ONNX runtimes: never)
    extra = tuple(r for r in ("onnxruntime", "openvino") if r in (chosen, a.runtime))
    for name in extra:
        __import__(name)  # the runtime's library, before the clock
    start_rss = rss_now_mb()
    t0 = time.perf_counter()
    r = geounet.predict(a.scene, a.out, model=loaded,
                        tiling=TilingConfig(a.tile_size, a.overlap), predict=config,
                        mask_out=a.mask, outputs=OutputConfig(overwrite=True))
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "tiles": r.tiles_predicted, "polygons": r.n_polygons,
            "rss_mb": peak_rss_mb(), "start_rss_mb": start_rss, "chosen": chosen,
            "versions": child_versions(extra)}


def child_model(a) -> dict:
    """The model alone on ``a.tiles`` real tiles, as geoai-py and as geounet's torch run it.

    Args:
        a: The command-line arguments (``tiles``, ``batch``, ``tile_size``, ``device``).

    Returns:
        ``{"nchw_s", "geounet_s", "tiles", "rss_mb"}``: seconds for the tiles with the
        module in NCHW under ``torch.no_grad`` (``predict_geotiff``'s way) and
        through geounet's torch predictor (channels_last, ``inference_mode``),
        each after two warm-up batches.
    """
    import copy

    import torch
    from runtimes import atlanta_tiles

    from geounet._alloc import tune_allocator
    from geounet.config import PredictConfig
    from geounet.models import load_model
    from geounet.pipeline.predictors import make_predictor

    tune_allocator()
    loaded = load_model(MODEL)
    x = atlanta_tiles(loaded.metadata, a.batch, a.tile_size)
    n = int(a.tiles)
    sizes = [min(a.batch, n - i) for i in range(0, n, a.batch)]
    nchw = copy.deepcopy(loaded.module).to(a.device).eval()  # geounet's turns its own copy CL
    xt = torch.from_numpy(x).to(a.device)

    def geoai_way(b: int) -> None:
        with torch.no_grad():
            nchw(xt[:b]).cpu().numpy()

    predictor = make_predictor(loaded, PredictConfig(device=a.device, batch_size=a.batch,
                                                     runtime="torch"), a.tile_size)
    out = {"tiles": n}
    for key, fn in (("nchw_s", geoai_way), ("geounet_s", lambda b: predictor(x[:b]))):
        fn(a.batch)
        fn(a.batch)
        t0 = time.perf_counter()
        for b in sizes:
            fn(b)
        out[key] = time.perf_counter() - t0
    out["rss_mb"] = peak_rss_mb()  # of both ways together: the floor of any torch pipeline
    return out


CHILDREN = {GEOAI: child_geoai, "geounet": child_geounet, "model": child_model}


def run_child(kind: str, python: str, **kw) -> dict:
    """Run one child in a fresh process; add the CPU other processes used meanwhile.

    Args:
        kind: A key of :data:`CHILDREN`.
        python: The interpreter to run it with.
        **kw: Command-line options of the child (``True`` is a bare flag).

    Returns:
        The child's JSON result plus ``other_cpu`` (share of the machine's CPU
        time, over the child's wall time, that other processes used).

    Raises:
        RuntimeError: if the child fails (with the end of its stderr).
    """
    args = [python, str(HERE), "--child", kind]
    for k, v in kw.items():
        if v is True:
            args.append(f"--{k.replace('_', '-')}")
        elif v is not False and v is not None:
            args += [f"--{k.replace('_', '-')}", str(v)]
    t = os.times()
    own0, busy0, t0 = t.children_user + t.children_system, machine_busy_s(), time.perf_counter()
    out = subprocess.run(args, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    t = os.times()
    own = t.children_user + t.children_system - own0
    if out.returncode != 0:
        raise RuntimeError(f"{kind} child {kw} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    other = machine_busy_s() - busy0 - own
    result["other_cpu"] = max(0.0, other) / (wall * (os.cpu_count() or 1))
    return result


# ---------------------------------------------------------------- agreement


def mask_agreement(path: Path, ref: Path) -> dict:
    """Pixel agreement of a class raster with geoai-py's mask.

    Args:
        path: geounet's class raster (0/1, 255 nodata).
        ref: geoai-py's mask (0/1, 255 nodata).

    Returns:
        ``{"agree", "iou", "differ_px"}``: share of equal pixels
        (``runtimes.class_agreement``), IoU of the building (1) pixels, and the
        number of differing pixels.
    """
    import rasterio

    with rasterio.open(path) as a, rasterio.open(ref) as b:
        got, want = a.read(1) == 1, b.read(1) == 1
    union = int(np.count_nonzero(got | want))
    inter = int(np.count_nonzero(got & want))
    return {"agree": class_agreement(path, ref), "iou": inter / union if union else 1.0,
            "differ_px": union - inter}


def polygon_stats(path: Path) -> tuple[int, float]:
    """Polygon count and total area (square map units) of a GeoPackage."""
    import pyogrio

    gdf = pyogrio.read_dataframe(path)
    return len(gdf), float(gdf.geometry.area.sum())


# ---------------------------------------------------------------- runs


def tools(a) -> list[str]:
    """The tools of a run in order: geoai-py, then geounet per runtime."""
    return [GEOAI] + [f"geounet {r}" for r in a.runtimes.split(",") if r]


def run_once(a, work: Path, size: int, tool: str, rep: int) -> dict:
    """One (scene, tool) run in a fresh child.

    Args:
        a: The command-line arguments.
        work: Work folder (scenes and outputs).
        size: Scene side in px.
        tool: ``"geoai"`` or ``"geounet RUNTIME"``.
        rep: Repetition index (outputs of later reps overwrite earlier ones).

    Returns:
        The child's result.
    """
    stem = work / f"{size}_{tool.replace(' ', '_')}"
    common = dict(scene=work / f"atlanta_{size}.tif", out=f"{stem}.gpkg",
                  mask=f"{stem}_classes.tif", tile_size=a.tile_size, overlap=a.overlap,
                  batch=a.batch, device=a.device)
    if tool == GEOAI:
        Path(f"{stem}.gpkg").unlink(missing_ok=True)  # geoai-py's to_file appends otherwise
        r = run_child(GEOAI, a.geoai_python or sys.executable,
                      geoai_plain_malloc=a.geoai_plain_malloc, **common)
    else:
        r = run_child("geounet", sys.executable, runtime=tool.split()[1],
                      geounet_plain_malloc=a.geounet_plain_malloc, **common)
    print(f"  {size}² {tool} (rep {rep + 1}): {r['wall_s']:.1f} s, "
          f"{r['rss_mb']:.0f} MB", file=sys.stderr, flush=True)
    return r


def summarise(size: int, tool: str, runs: list[dict], work: Path) -> dict:
    """Median time and RSS over a tool's reps, and its outputs' polygons.

    Args:
        size: Scene side in px.
        tool: The tool.
        runs: Its results, one per rep.
        work: Work folder.

    Returns:
        One row of the table (without the ratios to geoai-py).
    """
    stem = work / f"{size}_{tool.replace(' ', '_')}"
    n, area = polygon_stats(Path(f"{stem}.gpkg"))
    walls = [r["wall_s"] for r in runs]
    return {"size": size, "tool": tool, "chosen": runs[-1]["chosen"],
            "tiles": runs[-1]["tiles"], "polygons": n, "area": area,
            "wall_s": statistics.median(walls), "walls_s": walls,
            "rss_mb": statistics.median(r["rss_mb"] for r in runs),
            "start_rss_mb": statistics.median(r["start_rss_mb"] for r in runs),
            "other_cpu": max(r["other_cpu"] for r in runs),
            "versions": runs[-1]["versions"],
            "mask": Path(f"{stem}_classes.tif"),
            **({"raster_s": statistics.median(r["raster_s"] for r in runs),
                "vector_s": statistics.median(r["vector_s"] for r in runs)}
               if "raster_s" in runs[-1] else {})}


def run_size(a, work: Path, size: int) -> list[dict]:
    """All tools on one scene size, ``--reps`` times in turn, with ratios and agreement.

    Args:
        a: The command-line arguments.
        work: Work folder.
        size: Scene side in px.

    Returns:
        One row per tool, geoai-py's first.
    """
    from run import make_atlanta_mosaic

    scene = work / f"atlanta_{size}.tif"
    if not scene.exists():
        make_atlanta_mosaic(scene, size)
    names = tools(a)
    runs: dict[str, list[dict]] = {t: [] for t in names}
    for rep in range(a.reps):
        for tool in names:
            runs[tool].append(run_once(a, work, size, tool, rep))
    rows = [summarise(size, t, runs[t], work) for t in names]
    ref = rows[0]
    for r in rows:
        r["x_time"] = r["wall_s"] / ref["wall_s"]
        r["x_rss"] = r["rss_mb"] / ref["rss_mb"]
        r["x_polygons"] = r["polygons"] / ref["polygons"] if ref["polygons"] else float("nan")
        r["x_area"] = r["area"] / ref["area"] if ref["area"] else float("nan")
        r.update(mask_agreement(r["mask"], ref["mask"]))
    if not a.no_model_only:
        m = run_child("model", sys.executable, tiles=ref["tiles"], batch=a.batch,
                      tile_size=a.tile_size, device=a.device)
        for r in rows:
            r["model_s"] = m["nchw_s"] if r["tool"] == GEOAI else (
                m["geounet_s"] if r["chosen"] == "torch" else float("nan"))
        rows[0]["model_alone"] = m
    return rows


# ---------------------------------------------------------------- report


def print_versions(rows: list[dict]) -> None:
    """Print each side's library versions (the first row of each tool)."""
    seen = set()
    for r in rows:
        side = GEOAI if r["tool"] == GEOAI else "geounet"
        if side in seen:
            continue
        seen.add(side)
        v = r["versions"]
        print(f"{side} side: " + ", ".join(f"{k} {val}" for k, val in v.items()))


def print_table(rows: list[dict], a) -> None:
    """Print the time/RSS table, the agreement table and the model-alone figures."""
    print(f"\n{MODEL} on Atlanta mosaics, tiles {a.tile_size}/{a.overlap} px, batch {a.batch}, "
          f"threshold 0.5, GeoPackage + class raster, one fresh process per run, "
          f"median of {a.reps}; x geoai = geounet / geoai-py (targets at 8192²: time <= 0.4x, "
          "peak RSS <= 0.25x)")
    print(f"{'scene':>7} {'tool':<26} {'tiles':>5} {'wall s':>7} {'range s':>13} "
          f"{'peak RSS MB':>11} {'start RSS MB':>12} {'x geoai time':>12} {'x geoai RSS':>11} "
          f"{'other CPU':>9}")
    for r in rows:
        name = r["tool"] + (f" ({r['chosen']})" if r["tool"] == "geounet auto" else "")
        rng = f"{min(r['walls_s']):.1f}-{max(r['walls_s']):.1f}"
        print(f"{r['size']:>6}² {name:<26} {r['tiles']:>5} {r['wall_s']:>7.2f} {rng:>13} "
              f"{r['rss_mb']:>11.0f} {r['start_rss_mb']:>12.0f} {r['x_time']:>12.3f} "
              f"{r['x_rss']:>11.3f} {100 * r['other_cpu']:>8.1f}%")
    print("geoai-py's wall time = predict_geotiff + raster_to_vector: "
          + ", ".join(f"{r['size']}² {r['raster_s']:.1f} + {r['vector_s']:.1f} s"
                      for r in rows if r["tool"] == GEOAI))
    print("\nAgreement with geoai-py (class rasters; polygons read back from the GeoPackages)")
    print(f"{'scene':>7} {'tool':<26} {'polygons':>8} {'area m²':>12} {'equal px %':>10} "
          f"{'building IoU':>12} {'differ px':>9} {'x polygons':>10} {'x area':>7}")
    for r in rows:
        print(f"{r['size']:>6}² {r['tool']:<26} {r['polygons']:>8} {r['area']:>12.0f} "
              f"{100 * r['agree']:>10.4f} {r['iou']:>12.4f} {r['differ_px']:>9} "
              f"{r['x_polygons']:>10.4f} {r['x_area']:>7.4f}")
    alone = [r for r in rows if "model_s" in r]
    if alone:
        print("\nModel alone on the same number of real tiles (geoai-py: NCHW fp32 no_grad; "
              "geounet torch: channels_last fp32 inference_mode); share = model s / wall s")
        for r in alone:
            if r["model_s"] == r["model_s"]:  # not NaN
                print(f"{r['size']:>6}² {r['tool']:<26} model {r['model_s']:>7.2f} s, "
                      f"share {r['model_s'] / r['wall_s']:.3f}")
        print("peak RSS of the model-alone process, other CPU during it: " + ", ".join(
            f"{r['size']}² {r['model_alone'].get('rss_mb', float('nan')):.0f} MB, "
            f"{100 * r['model_alone']['other_cpu']:.1f} %" for r in rows if "model_alone" in r))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command-line arguments (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="4096,8192", help="scene sides, px")
    ap.add_argument("--runtimes", default=",".join(RUNTIMES),
                    help="geounet runtimes to run, comma-separated")
    ap.add_argument("--reps", type=int, default=1, help="runs per (scene, tool), in turn")
    ap.add_argument("--tile-size", type=int, default=512, help="tile side, px")
    ap.add_argument("--overlap", type=int, default=64, help="tile overlap, px")
    ap.add_argument("--batch", type=int, default=4, help="tiles per batch")
    ap.add_argument("--device", default="cpu", help="device of both sides (default cpu)")
    ap.add_argument("--geoai-python", default=None,
                    help="interpreter for the geoai-py runs (default: this one)")
    ap.add_argument("--geoai-plain-malloc", action="store_true",
                    help="run geoai-py with glibc's allocator defaults")
    ap.add_argument("--geounet-plain-malloc", action="store_true",
                    help="run geounet with glibc's allocator defaults (geounet.predict "
                         "from Python does not tune it; the geounet CLI does)")
    ap.add_argument("--no-model-only", action="store_true", help="skip the model-alone runs")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    for name in ("--scene", "--out", "--mask", "--runtime", "--tiles"):
        ap.add_argument(name, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main() -> None:
    """Run the benchmark and print the tables."""
    a = parse_args()
    if a.child:
        print(json.dumps(CHILDREN[a.child](a)))
        return
    work = Path(a.workdir or tempfile.mkdtemp(prefix="geounet-peers-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["GEOUNET_CACHE_DIR"] = str(work / "cache")  # children inherit it
    (work / "cache").mkdir(exist_ok=True)
    print(f"geounet vs geoai-py - {platform.node()}, Python {platform.python_version()}")
    print(f"CPU: {cpu_line()}")
    sys.stdout.flush()
    if any(r in a.runtimes for r in ("onnxruntime", "openvino")):
        from geounet.models import load_model
        from geounet.onnx_cache import onnx_graph

        onnx_graph(load_model(MODEL), a.tile_size)  # the export, before any clock
    busy0, t0 = machine_busy_s(), time.perf_counter()
    t = os.times()
    own0 = t.user + t.system + t.children_user + t.children_system
    rows = []
    for size in [int(s) for s in a.sizes.split(",") if s]:
        rows += run_size(a, work, size)
    print_versions(rows)
    print_table(rows, a)
    t = os.times()
    other = machine_busy_s() - busy0 - (t.user + t.system + t.children_user + t.children_system
                                        - own0)
    wall = time.perf_counter() - t0
    print(f"\nCPU time of other processes during the run: {other:.1f} s in {wall:.0f} s x "
          f"{os.cpu_count()} CPU ({100 * other / (wall * (os.cpu_count() or 1)):.0f} %; "
          "more than a few % means the figures are not those of a quiet machine)")
    if a.json:
        Path(a.json).write_text(json.dumps({"rows": rows, "args": vars(a)}, indent=2,
                                           default=str))


if __name__ == "__main__":
    main()
