"""Deprecated: moved to :mod:`geounet.pipeline.predictors` (removed in geounet 0.3)."""

from geounet._deprecated import moved_to

__getattr__ = moved_to(__name__, {
    "resolve_device": "geounet.pipeline.predictors",
    "auto_precision": "geounet.pipeline.predictors",
    "auto_channels_last": "geounet.pipeline.predictors",
    "Predictor": "geounet.pipeline.predictors",
    "TTAPredictor": "geounet.pipeline.predictors",
    "batched": "geounet.pipeline.predictors",
    "make_predictor": "geounet.pipeline.predictors",
})
