"""geounet benchmarks: memory and speed of training in the number and size of scenes.

Usage:
    python benchmarks/training.py [--quick] [--side 2048] [--big 8192] [--counts 1,4,16]
        [--workers 0,1] [--val-region none] [--own-labels] [--no-augment] [--workdir DIR]
        [--json OUT.json]

Quick smoke run (512 px scenes, a 2048 px big one; the same 9 trainings, about as long,
since the steps dominate, not the scenes):
    python benchmarks/training.py --quick

Everything is measured in one run, on this machine, on synthetic scenes made
in a temporary folder (or ``--workdir``): 1-band uint16 tiled DEFLATE GeoTIFFs
at 0.5 m in EPSG:32616, a dark noisy ground with bright rectangles as
buildings, laid out as a 4 x 4 grid of ``--side`` px scenes (16 files), and the
same ground as one ``--big`` px scene (default 4 x side: the same pixels and
polygons as the 16 scenes together). One GeoPackage of all the rectangles
covers every scene (each run clips it to its scenes); each scene also has its
own (``--own-labels`` trains on those too).

Each case is one ``geounet train --dataset CASE.csv`` in a fresh process
(small U-Net: ``--base-channels 8 --depth 3 --epochs 2 --steps-per-epoch 10
--batch-size 8 --tile-size 256 --augment flips``, and ``--val-region none``
unless given, so that an epoch's seconds are its training steps alone: the
engine's ``seconds`` include the validation), once per ``--workers``: the
first 1, 4 and 16 scenes (``--counts``) with the shared label file, and the
big scene with it. Right after 1 scene with 0 workers the same run with
``--augment full``. It prints:

1. the CPU model and its avx2/avx512 flags, torch's version, and the other
   ``geounet train`` processes running at the start (figures side by side in
   one run compare; absolute ones are those of a busy machine then);
2. per case: scene pixels (Mpx), peak RSS of the trainer process (its
   ``VmHWM``), of its DataLoader worker (``VmHWM``, which counts the pages it
   shares with the trainer since the fork, and its private memory, USS), and
   the peak of the process tree's summed PSS (shared pages counted once). All
   from ``/proc``, polled by this script (the parent, which imports no
   torch): ``VmHWM`` every 0.2 s (the kernel keeps the peak), PSS and USS
   every 2 s (``smaps_rollup`` costs ~40 ms of CPU for a 2 GB process), so
   those two are peaks of samples. ``x1``: trainer RSS and tree PSS over
   the 1-scene case with the same workers. steps/s of epoch 2 (epoch 1
   includes starting the worker and opening the scenes) and of epoch 1, from
   the run's ``metrics.jsonl``, and the wall time of the whole process (it
   includes imports, band statistics over every scene, SHA-256 of every
   file and the context measurement at the end);
3. steps/s with ``--augment flips`` against ``--augment full`` (1 scene, 0
   workers);
4. the CPU time of other processes during the run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import runtimes  # benchmarks/ is not a package: its CPU helpers

GSD = 0.5
X0, Y0 = 733600.0, 3725140.0
CRS = "EPSG:32616"
GRID = 4  # the scenes are a GRID x GRID layout
TRAIN_ARGS = ["--base-channels", "8", "--depth", "3", "--epochs", "2", "--steps-per-epoch",
              "10", "--batch-size", "8", "--tile-size", "256", "--device", "cpu", "--seed", "0",
              "--quiet", "--overwrite"]
POLL_S = 0.2
ROLLUP_EVERY = 10  # polls between reads of smaps_rollup (44 ms of CPU for a 2 GB process)
CPU_FLAGS = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16")


# ---------------------------------------------------------------- scenes


def block(i: int, j: int, side: int) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """The pixels of grid cell ``(i, j)`` and its buildings, seeded by the cell.

    Returns:
        ``(side, side)`` uint16 and ``(row, col, height, width)`` per rectangle.
    """
    rng = np.random.default_rng((i, j))
    img = rng.normal(300, 12, (side, side)).astype(np.float32)
    boxes = []
    for _ in range(max(4, side * side // 20000)):
        h, w = (int(v) for v in rng.integers(10, 40, 2))
        r, c = (int(v) for v in rng.integers(2, side - 42, 2))
        img[r:r + h, c:c + w] = rng.normal(900, 60) + rng.normal(0, 12, (h, w))
        boxes.append((r, c, h, w))
    return img.clip(1, 4000).astype(np.uint16), boxes


def write_tif(path: Path, width: int, height: int, x0: float, y0: float) -> object:
    """Open a tiled DEFLATE 1-band uint16 GeoTIFF for writing (caller closes it)."""
    import rasterio
    from rasterio.transform import from_origin

    return rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=1,
                         dtype="uint16", crs=CRS, transform=from_origin(x0, y0, GSD, GSD),
                         nodata=0, tiled=True, blockxsize=256, blockysize=256,
                         compress="deflate", predictor=2)


def boxes_frame(boxes: list[tuple[int, int, int, int]], x0: float, y0: float) -> object:
    """Rectangles ``(row, col, h, w)`` of a cell with origin ``(x0, y0)`` as polygons."""
    import geopandas as gpd
    import shapely

    geoms = [shapely.box(x0 + c * GSD, y0 - (r + h) * GSD, x0 + (c + w) * GSD, y0 - r * GSD)
             for r, c, h, w in boxes]
    return gpd.GeoDataFrame({"kind": ["building"] * len(geoms)}, geometry=geoms, crs=CRS)


def make_scenes(work: Path, side: int, big: int) -> dict:
    """Write the 16 scenes, the big one (``big`` px, 0: none) and the label files.

    Returns:
        ``{"scenes": [paths], "labels": [per-scene paths], "all_labels": path, "big": path}``.
    """
    import pandas as pd
    from rasterio.windows import Window

    cells = big // side if big else 0
    big_path = work / f"big_{big}.tif"
    big_ds = write_tif(big_path, big, big, X0, Y0) if big else None
    out: dict = {"scenes": [], "labels": [], "big": big_path if big else None}
    frames = []
    for i in range(max(GRID, cells)):
        for j in range(max(GRID, cells)):
            img, boxes = block(i, j, side)
            x0, y0 = X0 + j * side * GSD, Y0 - i * side * GSD
            if big_ds is not None and i < cells and j < cells:
                big_ds.write(img, 1, window=Window(j * side, i * side, side, side))
            if i < GRID and j < GRID:
                path = work / f"scene_{i}_{j}.tif"
                with write_tif(path, side, side, x0, y0) as ds:
                    ds.write(img, 1)
                frame = boxes_frame(boxes, x0, y0)
                frame.to_file(work / f"labels_{i}_{j}.gpkg")
                out["scenes"].append(path)
                out["labels"].append(work / f"labels_{i}_{j}.gpkg")
            frames.append(boxes_frame(boxes, x0, y0))
    if big_ds is not None:
        big_ds.close()
    out["all_labels"] = work / "all_labels.gpkg"
    pd.concat(frames, ignore_index=True).to_file(out["all_labels"])
    out["n_polygons"] = sum(len(f) for f in frames)
    return out


def write_csv(path: Path, rows: list[tuple[Path, Path]]) -> Path:
    """A dataset CSV ``scene,labels`` with absolute paths."""
    path.write_text("scene,labels\n" + "".join(f"{s},{lab}\n" for s, lab in rows))
    return path


# ---------------------------------------------------------------- memory of a process tree


def status_kb(pid: int, key: str) -> int:
    """A ``/proc/PID/status`` field in KiB (0 when the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def rollup_kb(pid: int) -> dict[str, int]:
    """``Pss`` and private (USS) KiB from ``/proc/PID/smaps_rollup`` ({} when gone)."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return {}
    vals = {k.strip(): int(v.split()[0]) for k, v in
            (line.split(":", 1) for line in text.splitlines()[1:] if ":" in line)}
    return {"pss": vals.get("Pss", 0),
            "uss": vals.get("Private_Clean", 0) + vals.get("Private_Dirty", 0)}


def descendants(pid: int) -> list[int]:
    """Every descendant of ``pid`` (``/proc/PID/task/*/children``)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = list(Path(f"/proc/{p}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                kids = []
            out += kids
            todo += kids
    return out


def watch(proc: subprocess.Popen) -> dict:
    """Poll a process tree until it exits: peak RSS (trainer, workers), USS and tree PSS.

    ``VmHWM`` (the kernel's own peak) is read every :data:`POLL_S` s; PSS and
    USS (``smaps_rollup``, costly) every :data:`ROLLUP_EVERY` polls, so their
    peaks are those of samples 2 s apart.

    Returns:
        MiB: ``main_rss``, ``worker_rss`` (largest worker), ``worker_uss``, ``tree_pss``,
        and ``workers`` (how many were seen).
    """
    peak = {"main_rss": 0, "worker_rss": 0, "worker_uss": 0, "tree_pss": 0}
    seen: set[int] = set()
    polls = 0
    while proc.poll() is None:
        kids = descendants(proc.pid)
        seen |= set(kids)
        peak["main_rss"] = max(peak["main_rss"], status_kb(proc.pid, "VmHWM"))
        for k in kids:
            peak["worker_rss"] = max(peak["worker_rss"], status_kb(k, "VmHWM"))
        if polls % ROLLUP_EVERY == ROLLUP_EVERY - 1:
            pss = rollup_kb(proc.pid).get("pss", 0)
            for k in kids:
                r = rollup_kb(k)
                peak["worker_uss"] = max(peak["worker_uss"], r.get("uss", 0))
                pss += r.get("pss", 0)
            peak["tree_pss"] = max(peak["tree_pss"], pss)
        polls += 1
        time.sleep(POLL_S)
    return {**{k: v / 1024 for k, v in peak.items()}, "workers": len(seen)}


# ---------------------------------------------------------------- one case


def run_case(work: Path, name: str, csv: Path, workers: int, extra: list[str]) -> dict:
    """One ``geounet train`` in a fresh process, watched; its memory, speed and wall time.

    Raises:
        RuntimeError: if the run fails (with the end of its stderr).
    """
    case = work / name
    case.mkdir(exist_ok=True)
    args = [sys.executable, "-m", "geounet", "train", "--dataset", str(csv), "-o",
            str(case / "model.safetensors"), "--log-dir", str(case / "log"),
            "--workers", str(workers), *TRAIN_ARGS, *extra]
    t0 = time.perf_counter()
    with open(case / "stderr.txt", "w") as err:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err)
        mem = watch(proc)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed ({proc.returncode}):\n"
                           f"{(case / 'stderr.txt').read_text()[-3000:]}")
    epochs = [json.loads(v) for v in (case / "log" / "metrics.jsonl").read_text().splitlines()
              if v.strip()]
    print(f"  {name}: {wall:.1f} s", file=sys.stderr, flush=True)
    return {**mem, "case": name, "workers": workers, "wall_s": wall,
            "steps_s": epochs[-1]["steps_per_s"], "steps_s_1": epochs[0]["steps_per_s"],
            "jsonl_rss": epochs[-1]["rss_mb"]}


def cases(data: dict, counts: list[int],
          own_labels: bool) -> list[tuple[str, list[tuple[Path, Path]], float]]:
    """``(name, [(scene, labels)], Mpx)`` of every case."""
    side_mpx = _mpx(data["scenes"][0])
    out = [(f"{n} scene{'s' if n > 1 else ''}", [(s, data["all_labels"])
                                                 for s in data["scenes"][:n]], n * side_mpx)
           for n in counts]
    if data["big"] is not None:
        out.append(("1 big scene", [(data["big"], data["all_labels"])], _mpx(data["big"])))
    if own_labels:
        n = len(data["scenes"])
        out.append((f"{n} scenes, own labels", list(zip(data["scenes"], data["labels"],
                                                       strict=True)), n * side_mpx))
    return out


def run_all(a: argparse.Namespace, data: dict, work: Path) -> tuple[list, list, dict]:
    """Every case for every ``--workers``, and ``--augment full`` right after 1 scene, 0 workers.

    Returns:
        ``(rows, augment rows, {case: Mpx})``.
    """
    extra = ["--val-region", a.val_region]
    rows, aug, sizes = [], [], {}
    for name, pairs, mpx in cases(data, [int(c) for c in a.counts.split(",") if c],
                                  a.own_labels):
        sizes[name] = mpx
        slug = name.replace(" ", "_").replace(",", "")
        csv = write_csv(work / f"{slug}.csv", pairs)
        for w in [int(v) for v in a.workers.split(",") if v]:
            rows.append({**run_case(work, f"{slug}_w{w}", csv, w, [*extra, "--augment",
                                                                   "flips"]), "case": name})
            if name == "1 scene" and w == 0 and not a.no_augment:
                aug = [{**rows[-1], "augment": "flips"},
                       {**run_case(work, "augment_full", csv, 0, [*extra, "--augment", "full"]),
                        "augment": "full"}]
    return rows, aug, sizes


def _mpx(path: Path) -> float:
    import rasterio

    with rasterio.open(path) as ds:
        return ds.width * ds.height / 1e6


# ---------------------------------------------------------------- report


def others_running() -> list[str]:
    """Command lines of ``geounet train`` processes already running (not this script's)."""
    out = subprocess.run(["pgrep", "-af", "geounet train"], capture_output=True, text=True,
                         check=False).stdout
    mine = {os.getpid(), os.getppid()}
    return [line for line in out.splitlines()
            if line.strip() and int(line.split()[0]) not in mine]


def print_table(rows: list[dict], sizes: dict) -> None:
    """The memory and speed table, with ratios to the 1-scene case of the same workers."""
    print(f"\n{'case':<22} {'Mpx':>6} {'wk':>2} {'trainer RSS':>11} {'worker RSS':>10} "
          f"{'worker USS':>10} {'tree PSS':>8} {'x1 RSS':>6} {'x1 PSS':>6} {'steps/s':>7} "
          f"{'ep1 st/s':>8} {'wall s':>6}")
    base = {r["workers"]: r for r in rows if r["case"] == "1 scene"}
    for r in rows:
        b = base.get(r["workers"], r)
        w = (f"{r['worker_rss']:>10.0f} {r['worker_uss']:>10.0f}" if r["workers"]
             else f"{'-':>10} {'-':>10}")
        print(f"{r['case']:<22} {sizes[r['case']]:>6.1f} {r['workers']:>2} "
              f"{r['main_rss']:>11.0f} {w} {r['tree_pss']:>8.0f} "
              f"{r['main_rss'] / b['main_rss']:>6.2f} {r['tree_pss'] / b['tree_pss']:>6.2f} "
              f"{r['steps_s']:>7.3f} {r['steps_s_1']:>8.3f} {r['wall_s']:>6.1f}")
    print("MiB. trainer RSS: VmHWM of the geounet train process (its metrics.jsonl rss_mb: "
          + ", ".join(f"{r['jsonl_rss']:.0f}" for r in rows) + "); worker RSS: the worker's "
          "VmHWM (counts pages shared with the trainer since the fork); worker USS: its "
          "private memory, peak; tree PSS: peak of the sampled sum of PSS over the tree; "
          "steps/s: epoch 2 (ep1: epoch 1, with worker start-up), metrics.jsonl")


def print_augment(rows: list[dict]) -> None:
    """steps/s of the augmentation settings, side by side."""
    print("\nAugmentation, 1 scene, 0 workers (flips: the 1-scene row above; full: the run "
          "right after it)")
    print(f"{'--augment':<10} {'steps/s':>7} {'ep1 st/s':>8} {'x flips':>7} {'trainer RSS':>11}")
    for r in rows:
        print(f"{r['augment']:<10} {r['steps_s']:>7.3f} {r['steps_s_1']:>8.3f} "
              f"{r['steps_s'] / rows[0]['steps_s']:>7.2f} {r['main_rss']:>11.0f}")


def parse_args() -> argparse.Namespace:
    """The command-line arguments (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="512 px scenes, a 2048 px big one")
    ap.add_argument("--side", type=int, default=None, help="side of the 16 scenes (2048)")
    ap.add_argument("--big", type=int, default=None, help="side of the big scene (8192; 0: none)")
    ap.add_argument("--counts", default="1,4,16", help="numbers of scenes trained on")
    ap.add_argument("--workers", default="0,1", help="--workers values")
    ap.add_argument("--val-region", default="none", help="geounet train --val-region")
    ap.add_argument("--own-labels", action="store_true",
                    help="also 16 scenes with a label file each")
    ap.add_argument("--no-augment", action="store_true", help="skip --augment full")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    a.side = a.side or (512 if a.quick else 2048)
    a.big = (GRID * a.side) if a.big is None else a.big
    return a


def main() -> None:
    """Make the scenes, run every case and print the tables."""
    from importlib.metadata import version

    a = parse_args()
    work = Path(a.workdir or tempfile.mkdtemp(prefix="geounet-training-"))
    work.mkdir(parents=True, exist_ok=True)
    others = others_running()
    print(f"geounet training benchmark - python {' '.join(sys.argv)}")
    print(f"CPU: {runtimes.cpu_line(CPU_FLAGS)}")
    print(f"torch {version('torch')}; work folder {work}")
    print("other geounet train running at the start: "
          + ("; ".join(o[:160] for o in others) if others else "none"))
    t = time.perf_counter()
    data = make_scenes(work, a.side, a.big)
    du = sum(f.stat().st_size for f in work.iterdir() if f.is_file()) / 2**20
    print(f"scenes: 16 x {a.side} px + 1 x {a.big} px, {data['n_polygons']} buildings, "
          f"{du:.0f} MiB on disk, made in {time.perf_counter() - t:.0f} s")
    sys.stdout.flush()
    busy0, own0, t0 = runtimes.machine_busy_s(), runtimes.own_cpu_s(), time.perf_counter()
    rows, aug, sizes = run_all(a, data, work)
    print(f"\nTraining: {' '.join(TRAIN_ARGS[:-2])} --val-region {a.val_region} --augment "
          "flips; one fresh process per row, the rows one after the other")
    print_table(rows, sizes)
    if aug:
        print_augment(aug)
    other = runtimes.machine_busy_s() - busy0 - (runtimes.own_cpu_s() - own0)
    wall = time.perf_counter() - t0
    print(f"\nCPU time of other processes during the runs: {other:.0f} s in {wall:.0f} s x "
          f"{os.cpu_count()} CPU ({100 * other / (wall * (os.cpu_count() or 1)):.0f} %); "
          "this script's own polling is in its figure"
          + ("; another geounet train was running" if others_running() or others else ""))
    if a.json:
        Path(a.json).write_text(json.dumps({"rows": rows, "augment": aug, "args": vars(a)},
                                           indent=1, default=str))


if __name__ == "__main__":
    main()
