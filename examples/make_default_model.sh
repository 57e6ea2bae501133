#!/usr/bin/env bash
# Re-creates geounet's bundled default model, geounet/models/weights/buildings-atlanta.safetensors,
# from the Atlanta sample: train on the western two thirds, hold out the eastern third,
# predict the whole chip, score the held-out third and stamp the figures into the model file.
# The eastern third is only monitored during training (--keep last keeps the final epoch), so
# its figures are a true held-out test. The U-Net upsamples with align_corners=False (geounet's
# default since 0.2, recorded in the file), and train ends by measuring the model's context on
# the chip, which sets the default tile size and overlap (docs/tiling.md). Took 32 minutes on
# 2 CPU cores that were also running other work. Run from the repository root with geounet installed.
set -euo pipefail
OUT=${OUT:-build/default-model}
mkdir -p "$OUT"
SCENE=examples/data/atlanta_sample.tif
LABELS=examples/data/atlanta_buildings.geojson

geounet train "$SCENE" "$LABELS" -o "$OUT/buildings-atlanta.safetensors" \
  --arch unet --base-channels 16 --depth 4 \
  --epochs 30 --steps-per-epoch 40 --batch-size 8 --tile-size 256 --overlap 32 \
  --lr 1e-3 --lr-schedule cosine --seed 0 --val-region east:0.333 --keep last \
  --band-names pan --name buildings-atlanta --device cpu --overwrite --quiet -v

geounet predict "$SCENE" -o "$OUT/footprints.geojson" --model "$OUT/buildings-atlanta.safetensors" \
  --mask-out "$OUT/classes.tif" --device cpu --overwrite --quiet

geounet evaluate "$OUT/classes.tif" "$LABELS" --region east:0.333 --json "$OUT/heldout.json"

python examples/stamp_evaluation.py "$OUT/buildings-atlanta.safetensors" "$OUT/heldout.json" \
  geounet/models/weights/buildings-atlanta.safetensors
