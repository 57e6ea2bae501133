"""Predictors: torch precision and layout, padding, devices, batching, test-time augmentation."""

import numpy as np
import pytest
import rasterio
import torch

from builders import random_scene
from geounet.config import OutputConfig, PredictConfig, TilingConfig
from geounet.errors import DeviceError
from geounet.models import load_model
from geounet.pipeline.predictors import Predictor, batched, resolve_device
from geounet.pipeline.run import predict_scene


def test_prefetch_thread_gives_the_same_result(tmp_path, model_file):
    scene = random_scene(tmp_path / "s.tif", 220, 180)
    outs = []
    for i, prefetch in enumerate((0, 3)):
        r = predict_scene(scene, None, model=model_file, tiling=TilingConfig(64, 16),
                          predict=PredictConfig(batch_size=2, prefetch=prefetch),
                          prob_out=tmp_path / f"p{i}.tif",
                          outputs=OutputConfig(prob_dtype="float32"))
        with rasterio.open(r.prob_out) as ds:
            outs.append(ds.read())
    assert np.array_equal(outs[0], outs[1])


# channels_last (on by default) must stay within 1e-3 in probability of NCHW fp32; bf16
# (opt-in) keeps 8 bits of mantissa: on the bundled model a probability may move by up to 0.2
# (0.12 measured with geounet 0.1's model, 0.18 with the one retrained for issue 13) while the
# classes agree on 99.9 % of pixels at the threshold (99.98 % measured).
CHANNELS_LAST_TOL = 1e-3
BF16_TOL = 0.2


def test_bf16_and_channels_last_within_tolerance_of_fp32():
    from rasterio.windows import Window

    from builders import SAMPLE_SCENE
    from geounet.io.read import BandScaler, Scene

    loaded = load_model("buildings-atlanta")
    m = loaded.metadata
    with Scene(SAMPLE_SCENE) as sc:
        tiles = [sc.read(Window(c, 200, 256, 256)) for c in (0, 300, 600)]
    x = np.stack([BandScaler(m.band_mean, m.band_std)(d, v) for d, v in tiles])
    ref = Predictor(loaded.module, m.binary, m.pad_multiple, "cpu", "fp32", False)(x)
    cl = Predictor(loaded.module, m.binary, m.pad_multiple, "cpu", "fp32", True)(x)
    assert np.abs(cl - ref).max() <= CHANNELS_LAST_TOL
    bf = Predictor(loaded.module, m.binary, m.pad_multiple, "cpu", "bf16", True)(x)
    assert np.abs(bf - ref).max() <= BF16_TOL
    assert np.mean((bf >= m.threshold) == (ref >= m.threshold)) >= 0.999
    auto = Predictor(loaded.module, m.binary, m.pad_multiple, "cpu")
    assert auto.precision == "fp32" and auto.channels_last


def test_predictor_pads_and_crops():
    module = torch.nn.Conv2d(1, 1, 3, padding=1)
    seen = []
    module.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].shape))
    p = Predictor(module, True, pad_multiple=32, device="cpu", precision="fp32")
    out = p(np.zeros((2, 1, 50, 70), np.float32))
    assert out.shape == (2, 1, 50, 70) and seen[0] == (2, 1, 64, 96)
    assert np.all((out >= 0) & (out <= 1))


def test_devices():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(DeviceError, match="fp16 needs a GPU"):
        Predictor(torch.nn.Identity(), True, device="cpu", precision="fp16")


def test_batched():
    assert list(batched(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]


def test_tta_inverts_each_transform_and_averages():
    from geounet.pipeline.predictors import TTAPredictor

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 32, 32)).astype(np.float32)
    # a per-pixel model commutes with flips and rotations: TTA must give back its output
    def pointwise(b):
        return 1 / (1 + np.exp(-b[:, :1]))

    for mode, passes in (("flips", 3), ("d4", 8)):
        calls = []
        tta = TTAPredictor(lambda b, calls=calls: calls.append(b.shape) or pointwise(b), mode)
        assert np.allclose(tta(x), pointwise(x), atol=1e-6)
        assert len(calls) == passes
    # a model that sees position: the average is the symmetrised map
    def column(b):
        n, _, h, w = b.shape
        return np.broadcast_to(np.arange(w, dtype=np.float32), (n, 1, h, w)).copy()

    out = TTAPredictor(column, "flips")(x)
    w = 32
    expected = (2 * np.arange(w) + (w - 1 - np.arange(w))) / 3
    assert np.allclose(out[0, 0, 5], expected)
    d4 = TTAPredictor(column, "d4")(x)  # rows and columns, both ways: constant (w-1)/2
    assert np.allclose(d4, (w - 1) / 2)
    with pytest.raises(Exception, match="test-time augmentation"):
        PredictConfig(tta="rot")


def test_tta_through_the_pipeline_changes_probabilities_not_shapes(tmp_path, model_file):
    scene = random_scene(tmp_path / "s.tif", 150, 120)
    a = predict_scene(scene, None, model=model_file, tiling=TilingConfig(64, 16),
                      keep_arrays=True)
    b = predict_scene(scene, None, model=model_file, tiling=TilingConfig(64, 16),
                      predict=PredictConfig(tta="d4"), keep_arrays=True)
    assert a.probs.shape == b.probs.shape
    diff = np.abs(a.probs - b.probs)
    assert diff.max() > 1e-4  # an untrained net is not rotation invariant
    assert diff.max() < 0.5
