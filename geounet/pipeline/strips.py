"""The strip and the protocol every strip stage shares.

The stitcher (:mod:`geounet.pipeline.stitch`) hands on the scene as strips of
whole rows, top to bottom. Every later stage takes them with the same three
methods (:class:`StripStage`): :meth:`~StripStage.add` a strip,
:meth:`~StripStage.finish` after the last one (flush and finalise), or
:meth:`~StripStage.abort` after a failure (release, leave outputs incomplete).
A stage that hands strips on calls the same methods of the next stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Strip:
    """Rows ``row_off .. row_off + n_rows - 1`` of the whole scene width.

    Attributes:
        row_off: Scene row of the first row.
        probs: ``(k, n_rows, width)`` float32 blended probabilities (``k`` = 1
            for binary models).
        valid: ``(n_rows, width)`` bool, True where the pixel has data (and,
            straight from the stitcher, was covered by a predicted tile).
        classes: ``(n_rows, width)`` uint8 class ids (255 = nodata), once
            classified; ``None`` before.
    """

    row_off: int
    probs: np.ndarray
    valid: np.ndarray
    classes: np.ndarray | None = None

    @property
    def n_rows(self) -> int:
        """Number of rows in the strip."""
        return int(self.valid.shape[0])

    def with_classes(self, classes: np.ndarray) -> Strip:
        """The same strip with ``classes`` set (a new object; arrays are shared)."""
        return replace(self, classes=classes)


class StripStage(Protocol):
    """What every strip stage does."""

    def add(self, strip: Strip) -> None:
        """Take the next strip (strips arrive top to bottom, contiguous)."""

    def finish(self) -> None:
        """After the last strip: flush what is buffered and finalise outputs."""

    def abort(self) -> None:
        """After a failure: release resources; outputs may be left incomplete."""


class Fanout:
    """Hands every strip to several stages in turn (for example the rasters and the polygons).

    Args:
        stages: The stages, called in this order.
    """

    def __init__(self, stages: Sequence[StripStage]) -> None:
        self.stages = list(stages)

    def add(self, strip: Strip) -> None:
        """Add ``strip`` to every stage."""
        for stage in self.stages:
            stage.add(strip)

    def finish(self) -> None:
        """Finish every stage."""
        for stage in self.stages:
            stage.finish()

    def abort(self) -> None:
        """Abort every stage (all of them, even if one fails; the first error is raised)."""
        error: BaseException | None = None
        for stage in self.stages:
            try:
                stage.abort()
            except BaseException as exc:  # keep aborting the others
                error = error or exc
        if error is not None:
            raise error
