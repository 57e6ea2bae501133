"""Stage 5 - classify: blended probabilities to class ids, strip by strip.

Binary models: class 1 where the probability reaches the threshold; multi-class
models: the most probable class (argmax). Pixels that are nodata in the scene,
or that no tile covered, get :data:`~geounet.constants.CLASS_NODATA`. Plugins'
``geounet_postprocess_classes`` hooks then change the strip (nodata is restored
after them).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from geounet.constants import CLASS_NODATA
from geounet.errors import EmptySceneError
from geounet.hooks import HookChain
from geounet.io.read import Scene
from geounet.pipeline.strips import Strip, StripStage


def classify(probs: np.ndarray, valid: np.ndarray, binary: bool, threshold: float) -> np.ndarray:
    """Class ids of a strip.

    Args:
        probs: ``(k, n, w)`` float32 probabilities (``k`` = 1 for binary models).
        valid: ``(n, w)`` bool; False pixels become :data:`CLASS_NODATA`.
        binary: One-channel model (threshold) or ``k`` classes (argmax).
        threshold: Probability threshold of a binary model, in [0, 1].

    Returns:
        ``(n, w)`` uint8 class ids.
    """
    if binary:
        classes = (probs[0] >= threshold).astype(np.uint8)
    else:
        classes = probs.argmax(axis=0).astype(np.uint8)
    classes[~valid] = CLASS_NODATA
    return classes


class Classifier:
    """A strip stage: classify each stitched strip and hand it on.

    Args:
        scene: The open scene (named in errors).
        binary: As for :func:`classify`.
        threshold: As for :func:`classify`.
        downstream: The next strip stage.
        hook: ``geounet_postprocess_classes`` implementations, or ``None``
            when there are none.
        context: The run's hook context (see :mod:`geounet.hookspecs`).

    Attributes:
        valid_pixels: Valid pixels seen so far.
    """

    def __init__(self, scene: Scene, binary: bool, threshold: float, downstream: StripStage,
                 hook: HookChain | None = None, context: dict[str, Any] | None = None) -> None:
        self.scene = scene
        self.binary = binary
        self.threshold = threshold
        self.downstream = downstream
        self.hook = hook if hook else None
        self.context = context or {}
        self.valid_pixels = 0

    def add(self, strip: Strip) -> None:
        """Classify a strip from the stitcher (``valid`` = covered by a tile).

        A pixel is valid when a tile covered it and its probability is not NaN
        (the tile source marks the scene's nodata so, see
        :func:`geounet.pipeline.sources.mark_nodata`); invalid pixels get
        probability 0 and :data:`CLASS_NODATA` before the next stage.

        Args:
            strip: Rows of blended probabilities (changed in place at invalid pixels).
        """
        valid = strip.valid & ~np.isnan(strip.probs[0])  # nodata is NaN (sources.mark_nodata)
        if not valid.all():
            strip.probs[:, ~valid] = 0
        self.valid_pixels += int(valid.sum())
        classes = classify(strip.probs, valid, self.binary, self.threshold)
        if self.hook is not None:
            classes = self.hook(classes, probs=strip.probs, row_off=strip.row_off,
                                context=self.context)
            classes[~valid] = CLASS_NODATA
        self.downstream.add(Strip(strip.row_off, strip.probs, valid, classes))

    def finish(self) -> None:
        """Finish the next stage, unless the scene had no valid pixel.

        Raises:
            EmptySceneError: if every pixel was nodata.
        """
        if self.valid_pixels == 0:
            raise EmptySceneError(
                f"every pixel of scene {self.scene.path!r} (bands {self.scene.bands}) is nodata; "
                "check the nodata value or choose other --bands"
            )
        self.downstream.finish()

    def abort(self) -> None:
        """Abort the next stage."""
        self.downstream.abort()
