#!/usr/bin/env bash
# Export the bundled models to the ONNX graphs shipped beside them (geounet/models/weights/*.onnx),
# so that they run where torch is not installed. Each graph records the SHA-256 of its
# .safetensors file; rerun this after retraining a bundled model. Needs geounet[torch].
set -euo pipefail
cd "$(dirname "$0")/.."
geounet=${GEOUNET:-.venv/bin/geounet}
for model in geounet/models/weights/*.safetensors; do
    name=$(basename "$model" .safetensors)
    "$geounet" export "$name" --onnx "geounet/models/weights/$name.onnx" --overwrite -q
    echo "$name -> geounet/models/weights/$name.onnx"
done
