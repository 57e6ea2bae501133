"""geounet benchmarks: throughput vs the model alone, flat memory, a whole-array peer, streaming vectorisation.

Usage:
    python benchmarks/run.py [--sizes 2048,8192,16384] [--peer-sizes 2048,8192]
        [--arch smp-resnet34|unet16] [--tile 512] [--overlap 64] [--batch 4]
        [--precision auto|fp32|bf16] [--workdir DIR] [--json OUT.json]

By default (``--arch bundled``) it runs geounet's bundled model ``buildings-atlanta`` on
mosaics of the real Atlanta sample chip (mirrored copies, 1-band uint16, tiled DEFLATE
GeoTIFFs), so the masks and polygons are those of real buildings. With ``--arch
smp-resnet34|smp-resnet18|unet16`` it runs a randomly initialised 3-band model on synthetic
3-band uint8 scenes instead (model speed only: an untrained net's masks are not realistic).
Every measurement runs in a fresh Python process (peak RSS from ``getrusage``); the model is
loaded before the clock starts, in every process alike. It prints:

1. end-to-end ``predict_scene`` (read -> tile -> predict -> stitch -> vectorise -> write
   GeoPackage) megapixels/s against the model alone on the same number of tiles of the same
   size and batch size (random input already in memory); target ratio >= 0.90;
2. peak RSS per scene size and the ratio largest / smallest; target <= 1.25;
3. a whole-array peer on the same model and tiles: the scene read whole, ``tiler``'s
   Tiler/Merger (Hann window) for tiling and blending, one ``rasterio.features.shapes`` call,
   GeoPackage written by geopandas; its time and peak RSS as ratios to geounet's; targets
   geounet <= 0.5x the time and <= 0.25x the memory;
4. streaming vectorisation (strips of tile height, merged) against one whole-array
   ``features.shapes`` call on the same class raster; target >= 0.8x the speed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (Linux ru_maxrss is KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------- data and model

def make_scene(path: Path, size: int, seed: int = 0) -> None:
    """A size x size 3-band uint8 tiled DEFLATE GeoTIFF, written block row by block row."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    rng = np.random.default_rng(seed)
    profile = dict(driver="GTiff", width=size, height=size, count=3, dtype="uint8",
                   crs="EPSG:32616", transform=from_origin(700000, 3800000, 0.5, 0.5),
                   tiled=True, blockxsize=512, blockysize=512, compress="deflate",
                   BIGTIFF="IF_SAFER")
    rows = 1024
    with rasterio.open(path, "w", **profile) as ds:
        for r0 in range(0, size, rows):
            h = min(rows, size - r0)
            ground = rng.normal(90, 25, (3, h, size)).clip(0, 255)
            for _ in range(size * h // 4000):  # ~ one 10-40 px "building" per 4000 px
                r, c = int(rng.integers(0, h)), int(rng.integers(0, size))
                s = int(rng.integers(10, 40))
                ground[:, r : r + s, c : c + s] = rng.normal(200, 10, (3, 1, 1))
            ds.write(ground.astype(np.uint8), window=Window(0, r0, size, h))


def make_atlanta_mosaic(path: Path, size: int) -> None:
    """A size x size mosaic of mirrored copies of the Atlanta chip (1-band uint16)."""
    import rasterio
    from rasterio.windows import Window

    chip_path = HERE.parents[1] / "examples" / "data" / "atlanta_sample.tif"
    with rasterio.open(chip_path) as src:
        chip = src.read(1)
        profile = src.profile
    h, w = chip.shape
    tiles = {(fy, fx): chip[:: -1 if fy else 1, :: -1 if fx else 1] for fy in (0, 1)
             for fx in (0, 1)}
    profile.update(width=size, height=size, tiled=True, blockxsize=512, blockysize=512,
                   compress="deflate", BIGTIFF="IF_SAFER", interleave="band")
    with rasterio.open(path, "w", **profile) as ds:
        for r0 in range(0, size, h):
            rows = min(h, size - r0)
            strip = np.empty((rows, size), chip.dtype)
            for c0 in range(0, size, w):
                cols = min(w, size - c0)
                strip[:, c0 : c0 + cols] = tiles[((r0 // h) % 2, (c0 // w) % 2)][:rows, :cols]
            ds.write(strip, 1, window=Window(0, r0, size, rows))


def make_model(path: Path, arch: str) -> None:
    """Save a randomly initialised 3-band binary model file."""
    import torch

    from geounet.models import ModelMetadata, build_model, save_model

    torch.manual_seed(0)
    if arch == "smp-resnet34":
        name, args = "smp_unet", {"encoder_name": "resnet34"}
    elif arch == "smp-resnet18":
        name, args = "smp_unet", {"encoder_name": "resnet18"}
    else:
        name, args = "unet", {"base_channels": 16, "depth": 4}
    model = build_model(name, 3, 1, **args)
    meta = ModelMetadata(name=f"bench-{arch}", architecture=name, arch_args=args,
                         bands=[1, 2, 3], band_names=["r", "g", "b"], band_mean=[100.0] * 3,
                         band_std=[40.0] * 3, classes=["background", "building"], gsd_m=0.5,
                         tile_size_px=512, overlap_px=64, threshold=0.5,
                         pad_multiple=model.pad_multiple)
    save_model(model, meta, path)


# ---------------------------------------------------------------- children (fresh processes)

def child_geounet(a) -> dict:
    from geounet._alloc import tune_allocator
    from geounet.config import OutputConfig, PredictConfig, TilingConfig
    from geounet.pipeline.run import predict_scene

    from geounet.models import load_model

    tune_allocator()
    model = load_model(a.model)
    t0 = time.perf_counter()
    r = predict_scene(a.scene, a.out, model=model, tiling=TilingConfig(a.tile, a.overlap),
                      predict=PredictConfig(batch_size=a.batch, precision=a.precision),
                      outputs=OutputConfig(overwrite=True))
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "tiles": r.tiles_predicted, "polygons": r.n_polygons,
            "rss_mb": peak_rss_mb()}


def child_model_only(a) -> dict:
    from geounet._alloc import tune_allocator
    from geounet.models import load_model
    from geounet.pipeline.predictors import Predictor
    from geounet.pipeline.tiling import plan_tiles

    tune_allocator()
    loaded = load_model(a.model)
    m = loaded.metadata
    pred = Predictor(loaded.module, m.binary, m.pad_multiple, "auto", a.precision)
    n = len(plan_tiles(a.size, a.size, a.tile, a.overlap))
    x = np.random.default_rng(0).normal(size=(a.batch, m.in_channels, a.tile, a.tile))
    x = x.astype(np.float32)
    t0 = time.perf_counter()
    done = 0
    while done < n:
        b = min(a.batch, n - done)
        pred(x[:b])
        done += b
    return {"wall_s": time.perf_counter() - t0, "tiles": n, "rss_mb": peak_rss_mb()}


def child_peer(a) -> dict:
    """Whole-array peer: rasterio read + tiler Tiler/Merger + one features.shapes + geopandas."""
    import geopandas as gpd
    import rasterio
    from rasterio import features
    from shapely.geometry import shape
    from tiler import Merger, Tiler

    from geounet._alloc import tune_allocator
    from geounet.models import load_model
    from geounet.pipeline.predictors import Predictor

    tune_allocator()
    loaded = load_model(a.model)
    m = loaded.metadata
    pred = Predictor(loaded.module, m.binary, m.pad_multiple, "auto", a.precision)
    t0 = time.perf_counter()
    with rasterio.open(a.scene) as ds:
        img = ds.read(loaded.metadata.bands).astype(np.float32)
        transform, crs = ds.transform, ds.crs
    mean = np.array(m.band_mean, np.float32)[:, None, None]
    std = np.array(m.band_std, np.float32)[:, None, None]
    img = (img - mean) / std
    tiler = Tiler(data_shape=img.shape, tile_shape=(img.shape[0], a.tile, a.tile), overlap=a.overlap,
                  channel_dimension=0)
    out_tiler = Tiler(data_shape=(1, *img.shape[1:]), tile_shape=(1, a.tile, a.tile),
                      overlap=a.overlap, channel_dimension=0)
    merger = Merger(out_tiler, window="hann")
    for batch_id, batch in tiler.iterate(img, batch_size=a.batch):
        merger.add_batch(batch_id, a.batch, pred(batch))
    probs = merger.merge(unpad=True)
    del img
    classes = (probs[0] >= m.threshold).astype(np.uint8)
    geoms = [shape(g) for g, v in features.shapes(classes, mask=classes == 1, transform=transform)]
    gpd.GeoDataFrame({"class_id": np.ones(len(geoms), np.int32)}, geometry=geoms,
                     crs=crs).to_file(a.out, engine="pyogrio")
    return {"wall_s": time.perf_counter() - t0, "tiles": len(tiler), "polygons": len(geoms),
            "rss_mb": peak_rss_mb()}


def child_vectorize(a) -> dict:
    """Streaming vectorisation vs one features.shapes call on the same class raster."""
    from rasterio import features
    from rasterio.transform import from_origin
    from shapely.geometry import shape

    from geounet.pipeline.vectorize import StreamingVectorizer

    rng = np.random.default_rng(1)
    size = a.size
    cls = np.zeros((size, size), np.uint8)
    for _ in range(size * size // 4000):
        r, c = int(rng.integers(0, size)), int(rng.integers(0, size))
        s = int(rng.integers(10, 40))
        cls[r : r + s, c : c + s] = 1
    probs = np.zeros((1, 1, size), np.float32)  # no scores: time polygons only, in both
    t = from_origin(700000, 3800000, 0.5, 0.5)
    t0 = time.perf_counter()
    whole = [shape(g) for g, v in features.shapes(cls, mask=cls == 1, transform=t)]
    t_whole = time.perf_counter() - t0
    del probs
    n = 0

    def count(gdf):
        nonlocal n
        n += len(gdf)

    strip = a.tile - a.overlap
    t0 = time.perf_counter()
    sv = StreamingVectorizer(size, t, "EPSG:32616", ["bg", "b"], count)
    for r0 in range(0, size, strip):
        sv.add_rows(r0, cls[r0 : r0 + strip])
    sv.finish()
    t_stream = time.perf_counter() - t0
    return {"whole_s": t_whole, "stream_s": t_stream, "whole_n": len(whole), "stream_n": n}


CHILDREN = {"geounet": child_geounet, "model-only": child_model_only, "peer": child_peer,
            "vectorize": child_vectorize}


def run_child(kind: str, **kw) -> dict:
    """Run one measurement in a fresh Python process and return its JSON result."""
    args = [sys.executable, str(HERE), "--child", kind]
    for k, v in kw.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    out = subprocess.run(args, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{kind} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- main

def main() -> None:
    """Run the benchmark and print the table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--child", choices=sorted(CHILDREN))
    ap.add_argument("--scene")
    ap.add_argument("--out")
    ap.add_argument("--model")
    ap.add_argument("--size", type=int)
    ap.add_argument("--sizes", default="2048,8192,16384")
    ap.add_argument("--peer-sizes", default="2048,8192")
    ap.add_argument("--vector-size", type=int, default=8192)
    ap.add_argument("--arch", default="bundled",
                    choices=["bundled", "smp-resnet34", "smp-resnet18", "unet16"])
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--overlap", type=int, default=64)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(CHILDREN[a.child](a)))
        return

    work = Path(a.workdir or tempfile.mkdtemp(prefix="geounet-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    if a.arch == "bundled":
        from geounet.models import bundled_models

        model = bundled_models()["buildings-atlanta"]
    else:
        model = work / f"{a.arch}.safetensors"
        if not model.exists():
            make_model(model, a.arch)
    sizes = [int(s) for s in a.sizes.split(",") if s]
    peer_sizes = {int(s) for s in a.peer_sizes.split(",") if s}
    common = dict(model=model, tile=a.tile, overlap=a.overlap, batch=a.batch,
                  precision=a.precision)
    rows = []
    for size in sizes:
        scene = work / f"{'atlanta' if a.arch == 'bundled' else 'synthetic'}_{size}.tif"
        if not scene.exists():
            (make_atlanta_mosaic if a.arch == "bundled" else make_scene)(scene, size)
        mpx = size * size / 1e6
        g = run_child("geounet", scene=scene, out=work / f"geounet_{size}.gpkg", size=size,
                      **common)
        mo = run_child("model-only", scene=scene, size=size, **common)
        row = {"size": size, "mpx": mpx, "geounet": g, "model_only": mo,
               "geounet_mpx_s": mpx / g["wall_s"], "model_mpx_s": mpx / mo["wall_s"]}
        row["throughput_ratio"] = row["geounet_mpx_s"] / row["model_mpx_s"]
        if size in peer_sizes:
            p = run_child("peer", scene=scene, out=work / f"peer_{size}.gpkg", size=size,
                          **common)
            row["peer"] = p
            row["time_ratio"] = g["wall_s"] / p["wall_s"]
            row["rss_ratio"] = g["rss_mb"] / p["rss_mb"]
        rows.append(row)
        print(f"done {size}: {json.dumps(row)}", file=sys.stderr, flush=True)
    vec = run_child("vectorize", size=a.vector_size, tile=a.tile, overlap=a.overlap)
    vec["speed_ratio"] = vec["whole_s"] / vec["stream_s"]

    import torch

    print(f"\ngeounet benchmark - {platform.node()}, {os.cpu_count()} CPU, "
          f"torch {torch.__version__}, {'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU only'}")
    print(f"model {a.arch}, tiles {a.tile} px, overlap {a.overlap} px, batch {a.batch}, "
          f"precision {a.precision}\n")
    print(f"{'scene':>7} {'tiles':>6} {'geounet Mpx/s':>14} {'model Mpx/s':>12} {'ratio':>6} "
          f"{'RSS MB':>8} {'peer s':>8} {'peer RSS':>9} {'t/peer':>7} {'RSS/peer':>9}")
    for r in rows:
        peer = r.get("peer")
        print(f"{r['size']:>6}² {r['geounet']['tiles']:>6} {r['geounet_mpx_s']:>14.3f} "
              f"{r['model_mpx_s']:>12.3f} {r['throughput_ratio']:>6.3f} "
              f"{r['geounet']['rss_mb']:>8.0f} "
              + (f"{peer['wall_s']:>8.1f} {peer['rss_mb']:>9.0f} {r['time_ratio']:>7.3f} "
                 f"{r['rss_ratio']:>9.3f}" if peer else f"{'-':>8} {'-':>9} {'-':>7} {'-':>9}"))
    rss = [r["geounet"]["rss_mb"] for r in rows]
    if len(rows) > 1:
        print(f"\npeak RSS {rows[-1]['size']}² / {rows[0]['size']}²: {rss[-1] / rss[0]:.3f} "
              "(target <= 1.25)")
    ratios = ", ".join(f"{r['throughput_ratio']:.3f}" for r in rows)
    print(f"throughput ratio end-to-end / model-only: {ratios} (target >= 0.90)")
    print(f"streaming vectorisation {a.vector_size}²: {vec['stream_s']:.2f} s vs one "
          f"features.shapes {vec['whole_s']:.2f} s -> {vec['speed_ratio']:.3f}x "
          f"({vec['stream_n']} / {vec['whole_n']} polygons; target >= 0.8x)")
    if a.json:
        Path(a.json).write_text(json.dumps({"rows": rows, "vectorize": vec, "args": vars(a)},
                                           indent=2, default=str))


if __name__ == "__main__":
    main()
