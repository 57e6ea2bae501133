"""Training records: metrics.jsonl, TensorBoard events, the curve PNG."""

import json

import numpy as np
from PIL import Image

from geounet.training.records import TrainingLog, peak_rss_mb, plot_curves


def test_log_writes_json_lines_tensorboard_and_curves_and_rewrites_on_resume(tmp_path):
    before = [{"epoch": 1, "loss": 0.9, "val_iou": 0.2}, {"epoch": 2, "loss": 0.7, "val_iou": None}]
    log = TrainingLog(tmp_path / "run", before)
    log.epoch({"epoch": 3, "loss": 0.5, "val_iou": 0.4, "seconds": 1.5})
    log.close()
    lines = [json.loads(v) for v in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2, 3] and lines[2]["seconds"] == 1.5
    events = list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    assert [e.value for e in acc.Scalars("loss")] == [0.5]
    # a resumed run starts from its checkpoint's history: epoch 3 is written once only
    TrainingLog(tmp_path / "run", lines[:2], tensorboard=False).close()
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 2


def test_curves_are_drawn(tmp_path):
    png = plot_curves([{"epoch": e, "loss": 1 / e, "val_iou": e / 10} for e in range(1, 6)],
                      tmp_path / "c.png")
    img = np.asarray(Image.open(png).convert("RGB")).astype(int)
    orange = (abs(img[..., 0] - 255) < 40) & (abs(img[..., 1] - 127) < 40) & (img[..., 2] < 60)
    blue = (img[..., 2] > 150) & (img[..., 0] < 80)
    assert orange.sum() > 50 and blue.sum() > 50  # both curves drawn
    assert peak_rss_mb() > 10
