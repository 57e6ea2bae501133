"""Write held-out figures from ``geounet evaluate --json`` into a model file's metadata.

Usage: python examples/stamp_evaluation.py MODEL.safetensors HELDOUT.json OUTPUT.safetensors [METHOD]

Works for both kinds of figures: binary (pixel and building metrics, ``--region``) and
multi-class (``--label-column``/``--held-out-of``: overall accuracy, mean IoU, per class).
METHOD is the command that produced HELDOUT.json, stored with the figures.
"""

import json
import sys

from geounet.models.modelfile import update_metadata


def main(model: str, figures: str, output: str, method: str | None = None) -> None:
    """Copy MODEL to OUTPUT with ``evaluation`` taken from the evaluate JSON."""
    res = json.loads(open(figures).read())
    if res.get("classes"):
        c = res["classes"]
        evaluation = {
            "held_out": "polygons",
            "overall_accuracy": round(c["overall_accuracy"], 4),
            "mean_iou": round(c["mean_iou"], 4),
            "pixels": c["pixels"],
            "polygons": c["polygons"],
            "per_class": {name: {k: (None if v is None else round(v, 4))
                                 for k, v in m.items() if k != "support_px"}
                          | {"support_px": m["support_px"]}
                          for name, m in c["per_class"].items()},
            "confusion": c["confusion"],
            "method": method or "geounet evaluate CLASSES.tif LABELS --held-out-of MODEL",
        }
        update_metadata(model, output, evaluation=evaluation)
        return
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
    main(*sys.argv[1:5])
