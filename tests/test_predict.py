import numpy as np
import pytest
import rasterio
import torch

from conftest import random_scene
from geounet.config import OutputConfig, PredictConfig, TilingConfig
from geounet.errors import DeviceError
from geounet.models import load_model
from geounet.pipeline import predict_scene
from geounet.inference import Predictor, batched, resolve_device


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


# bf16 keeps 8 bits of mantissa: probabilities may move by ~1e-2. The stated tolerance of the
# bf16 path against fp32 is 0.03 in probability and 99 % agreement of the classes at 0.5.
BF16_TOL = 0.03


def test_bf16_and_channels_last_within_tolerance_of_fp32(model_file):
    loaded = load_model(model_file)
    m = loaded.metadata
    x = np.random.default_rng(0).normal(size=(3, 1, 64, 64)).astype(np.float32)
    ref = Predictor(loaded.module, m.binary, m.pad_multiple, "cpu", "fp32", False)(x)
    cl = Predictor(loaded.module, m.binary, m.pad_multiple, "cpu", "fp32", True)(x)
    np.testing.assert_allclose(cl, ref, atol=1e-5)
    bf = Predictor(loaded.module, m.binary, m.pad_multiple, "cpu", "bf16", True)(x)
    assert np.abs(bf - ref).max() <= BF16_TOL
    assert np.mean((bf >= 0.5) == (ref >= 0.5)) >= 0.99


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
