"""Measure CPU/GPU inference speed and error of fp32/bf16 and NCHW/channels_last.

Usage: python benchmarks/precision.py [--archs smp-resnet34,unet16] [--tile 512] [--batch 4]
       [--reps 3] [--device auto]

Prints, per architecture and setting, megapixels/s over ``reps`` batches after one warm-up
batch, the speed-up over fp32 NCHW, and the largest probability difference from fp32 on the
same random input. geounet's ``precision="auto"`` / ``channels_last=None`` defaults follow
these figures (docs/performance.md).
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    """Run the measurements."""
    from run import make_model

    from geounet._alloc import tune_allocator
    from geounet.models import load_model
    from geounet.pipeline.predictors import Predictor

    ap = argparse.ArgumentParser()
    ap.add_argument("--archs", default="smp-resnet34,unet16")
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--workdir", default="/tmp/geounet-precision")
    a = ap.parse_args()
    tune_allocator()
    Path(a.workdir).mkdir(exist_ok=True)
    x = np.random.default_rng(0).normal(size=(a.batch, 3, a.tile, a.tile)).astype(np.float32)
    mpx = a.batch * a.tile * a.tile / 1e6
    for arch in a.archs.split(","):
        path = Path(a.workdir) / f"{arch}.safetensors"
        if not path.exists():
            make_model(path, arch)
        loaded = load_model(path)
        m = loaded.metadata
        ref = None
        base = None
        for precision in ("fp32", "bf16"):
            for cl in (False, True):
                p = Predictor(loaded.module, m.binary, m.pad_multiple, a.device, precision, cl)
                y = p(x)  # warm-up
                t0 = time.perf_counter()
                for _ in range(a.reps):
                    y = p(x)
                rate = a.reps * mpx / (time.perf_counter() - t0)
                if ref is None:
                    ref, base = y, rate
                diff = float(np.abs(y - ref).max())
                print(f"{arch:>13} {p.device.type} {precision} "
                      f"{'channels_last' if cl else 'NCHW':>13}: {rate:6.3f} Mpx/s  "
                      f"x{rate / base:4.2f}  max |p - p_fp32| {diff:.4f}", flush=True)


if __name__ == "__main__":
    main()
