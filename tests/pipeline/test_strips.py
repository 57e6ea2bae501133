"""The strip protocol: stages added, finished and aborted in order, also when one fails."""

from __future__ import annotations

import numpy as np
import pytest

from geounet.pipeline.strips import Fanout, Strip


class Recorder:
    def __init__(self, log, name, fail_abort=False):
        self.log, self.name, self.fail_abort = log, name, fail_abort

    def add(self, strip):
        self.log.append((self.name, "add", strip.row_off))

    def finish(self):
        self.log.append((self.name, "finish"))

    def abort(self):
        self.log.append((self.name, "abort"))
        if self.fail_abort:
            raise RuntimeError(f"{self.name} failed to abort")


def strip(row_off=0, n=3, w=4):
    return Strip(row_off, np.zeros((1, n, w), np.float32), np.ones((n, w), bool))


def test_strip_shape_and_classes():
    s = strip(5)
    assert s.n_rows == 3 and s.classes is None
    c = s.with_classes(np.ones((3, 4), np.uint8))
    assert c.row_off == 5 and c.probs is s.probs and c.classes.sum() == 12
    assert s.classes is None  # strips are immutable


def test_fanout_calls_every_stage_in_order():
    log = []
    fan = Fanout([Recorder(log, "a"), Recorder(log, "b")])
    fan.add(strip(0))
    fan.add(strip(3))
    fan.finish()
    assert log == [("a", "add", 0), ("b", "add", 0), ("a", "add", 3), ("b", "add", 3),
                   ("a", "finish"), ("b", "finish")]


def test_fanout_aborts_every_stage_even_if_one_fails():
    log = []
    fan = Fanout([Recorder(log, "a", fail_abort=True), Recorder(log, "b")])
    with pytest.raises(RuntimeError, match="a failed"):
        fan.abort()
    assert log == [("a", "abort"), ("b", "abort")]
