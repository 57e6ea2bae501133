#!/usr/bin/env bash
# Re-creates geounet's bundled land-cover model, geounet/models/weights/landcover-landsat7.safetensors,
# from the Raleigh Landsat 7 sample and its 34 labelled polygons (sparse labels: pixels outside
# every polygon are ignored). A seeded 30 % of each class's polygons (whole polygons, at least
# one per class with two or more) is held out; it is only monitored during training (--keep last
# keeps the final epoch), so its figures are a true held-out test. The class with a single
# polygon (agriculture) has no held-out polygon. Train ends by measuring the model's context
# (docs/tiling.md). About 2-4 minutes on 2 CPU cores.
# Run from the repository root with geounet installed.
set -euo pipefail
OUT=${OUT:-build/landcover-model}
mkdir -p "$OUT"
SCENE=examples/data/landsat_raleigh.tif
LABELS=examples/data/landsat_landcover.shp
MODEL="$OUT/landcover-landsat7.safetensors"

geounet train "$SCENE" "$LABELS" -o "$MODEL" \
  --label-column label --classes developed,agriculture,herbaceous,shrubland,forest,water,sediment \
  --unlabelled ignore --val-polygons 0.3 --class-weighting balanced \
  --arch unet --base-channels 32 --depth 1 \
  --epochs 20 --steps-per-epoch 20 --batch-size 8 --tile-size 128 --overlap 32 \
  --lr 1e-3 --lr-schedule cosine --seed 0 --keep last \
  --band-names etm1_blue,etm2_green,etm3_red,etm4_nir,etm5_swir1 \
  --name landcover-landsat7 --device cpu --overwrite --quiet -v

geounet predict "$SCENE" -o "$OUT/landcover.gpkg" --model "$MODEL" \
  --mask-out "$OUT/classes.tif" --device cpu --overwrite --quiet

geounet evaluate "$OUT/classes.tif" "$LABELS" --held-out-of "$MODEL" --json "$OUT/heldout.json"

python examples/stamp_evaluation.py "$MODEL" "$OUT/heldout.json" \
  geounet/models/weights/landcover-landsat7.safetensors \
  "geounet evaluate CLASSES.tif landsat_landcover.shp --held-out-of landcover-landsat7"
