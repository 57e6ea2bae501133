"""Write held-out figures from ``geounet evaluate --json`` into a model file's metadata.

Usage: python examples/stamp_evaluation.py MODEL.safetensors HELDOUT.json OUTPUT.safetensors
"""

import json
import sys

from geounet.models.modelfile import update_metadata


def main(model: str, figures: str, output: str) -> None:
    """Copy MODEL to OUTPUT with ``evaluation`` taken from the evaluate JSON."""
    res = json.loads(open(figures).read())
    evaluation = {
        "region": res["region"],
        "pixel_iou": round(res["pixel"]["iou"], 4),
        "pixel_f1": round(res["pixel"]["f1"], 4),
        "pixel_precision": round(res["pixel"]["precision"], 4),
        "pixel_recall": round(res["pixel"]["recall"], 4),
        "building_f1": round(res["buildings"]["f1"], 4),
        "building_precision": round(res["buildings"]["precision"], 4),
        "building_recall": round(res["buildings"]["recall"], 4),
        "building_iou_threshold": res["buildings"]["iou_threshold"],
        "buildings_tp_fp_fn": [res["buildings"]["tp"], res["buildings"]["fp"],
                               res["buildings"]["fn"]],
        "method": "geounet evaluate CLASSES.tif atlanta_buildings.geojson --region "
                  + res["region"],
    }
    update_metadata(model, output, evaluation=evaluation)


if __name__ == "__main__":
    main(*sys.argv[1:4])
