"""geounet.training.finetune: starting a training from an existing model (``--init``)."""

import json
import shutil

import pytest
import torch
from builders import tiny_model

from geounet.errors import (
    BandCountError,
    InvalidOptionError,
    ModelFileError,
    UnsupportedFormatError,
)
from geounet.models import build_model, bundled_models, load_model
from geounet.models.metadata import ModelMetadata
from geounet.models.modelfile import save_model
from geounet.training.finetune import (
    adapt_classes,
    encoder_parameters,
    init_band_statistics,
    load_init,
    set_encoder_trainable,
)

SMP_TINY = dict(encoder_name="resnet18", encoder_depth=3, decoder_channels=(16, 8, 4))


def _meta(architecture, arch_args, classes, bands=(1,)):
    return ModelMetadata(
        name="m", architecture=architecture, arch_args=arch_args, bands=list(bands),
        band_names=[f"b{b}" for b in bands], band_mean=[500.0] * len(bands),
        band_std=[250.0] * len(bands), classes=list(classes), pad_multiple=4,
        background_class=0 if len(classes) == 2 else None)


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _others_equal(before, module, head):
    """Every tensor but the head's (prefix ``head``) is bit-identical to ``before``."""
    after = module.state_dict()
    keys = [k for k in before if not k.startswith(head)]
    assert keys and set(keys) == {k for k in after if not k.startswith(head)}
    assert all(torch.equal(before[k], after[k]) for k in keys)


def test_load_init_bundled_model_is_the_model_predict_runs():
    module, meta = load_init("buildings-atlanta")
    assert meta.architecture == "unet" and meta.classes == ["background", "building"]
    assert isinstance(module, torch.nn.Module)
    assert {p.device.type for p in module.parameters()} == {"cpu"}
    ref = load_model("buildings-atlanta").module
    x = torch.randn(1, meta.in_channels, 64, 64)
    with torch.no_grad():
        assert torch.equal(module.eval()(x), ref(x))


def test_load_init_saved_unet_file(tmp_path):
    torch.manual_seed(3)
    net = build_model("unet", 2, 3, base_channels=4, depth=2)
    path = save_model(net, _meta("unet", {"base_channels": 4, "depth": 2}, ["a", "b", "c"],
                                 bands=(3, 1)), tmp_path / "small.safetensors")
    module, meta = load_init(path)
    assert meta.bands == [3, 1] and meta.classes == ["a", "b", "c"]
    want, got = net.state_dict(), module.state_dict()
    assert set(want) == set(got) and all(torch.equal(want[k], got[k]) for k in want)


def test_load_init_refuses_onnx_and_names_the_safetensors_file(tmp_path):
    onnx = bundled_models()["buildings-atlanta"].with_suffix(".onnx")
    with pytest.raises(UnsupportedFormatError, match="cannot be trained") as err:
        load_init(onnx)
    assert "buildings-atlanta.safetensors" in str(err.value)
    assert isinstance(err.value, ValueError)
    alone = tmp_path / "alone.onnx"
    shutil.copyfile(onnx, alone)
    with pytest.raises(UnsupportedFormatError, match=r"\.safetensors model file it was expo"):
        load_init(alone)


def test_load_init_foreign_state_dict_needs_import_or_a_sidecar(tmp_path):
    torch.manual_seed(0)
    net = build_model("unet", 1, 1, base_channels=4, depth=2)
    torch.save(net.state_dict(), tmp_path / "w.pth")
    with pytest.raises(ModelFileError) as err:
        load_init(tmp_path / "w.pth")
    msg = str(err.value)
    assert "geounet import" in msg and "--init" in msg and "the architecture" in msg
    (tmp_path / "w.geounet.json").write_text(json.dumps(
        {"architecture": "unet", "arch_args": {"base_channels": 4, "depth": 2}, "bands": [1],
         "classes": ["background", "roof"], "band_mean": [1.0], "band_std": [2.0]}))
    module, meta = load_init(tmp_path / "w.pth")
    assert meta.classes == ["background", "roof"] and meta.band_std == [2.0]
    assert torch.equal(module.outc.conv.weight, net.outc.conv.weight)


def test_same_classes_leave_the_model_as_it_is(model_file):
    module, meta = load_init(model_file)
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        before = module(x)
    out, report = adapt_classes(module, meta, ["background", "building"], "unet")
    assert out is module
    assert report == {"kept": ["background", "building"], "new": [], "dropped": [],
                      "head_rebuilt": False}
    with torch.no_grad():
        assert torch.equal(out(x), before)


def test_binary_to_three_classes_keeps_the_rest_and_the_building_logit(model_file):
    module, meta = load_init(model_file)
    before, old = _state(module), module.outc.conv
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        p_old = torch.sigmoid(module(x))
    out, report = adapt_classes(module, meta, ["background", "building", "road"], "unet")
    assert report == {"kept": ["background", "building"], "new": ["road"], "dropped": [],
                      "head_rebuilt": True}
    head = out.outc.conv
    assert head is not old and head.weight.shape == (3, *old.weight.shape[1:])
    _others_equal(before, out, "outc.")
    assert torch.equal(head.weight[1], before["outc.conv.weight"][0])
    assert torch.equal(head.bias[1], before["outc.conv.bias"][0])
    assert not head.weight[0].any() and head.bias[0] == 0  # the implicit background logit 0
    assert head.weight[2].any()  # fresh
    with torch.no_grad():
        logits = out(x)
    assert logits.shape == (2, 3, 32, 32)
    # softmax over background and building alone is the old model's sigmoid
    assert torch.allclose(torch.sigmoid(logits[:, 1:2] - logits[:, 0:1]), p_old, atol=1e-6)


def test_multiclass_rows_follow_the_names(tmp_path):
    path = tiny_model(tmp_path / "abc.safetensors", classes=("a", "b", "c"),
                      background_class=None)
    module, meta = load_init(path)
    w, b = module.outc.conv.weight.detach().clone(), module.outc.conv.bias.detach().clone()
    module, report = adapt_classes(module, meta, ["c", "x", "a", "b"], "unet")
    head = module.outc.conv
    assert report == {"kept": ["c", "a", "b"], "new": ["x"], "dropped": [],
                      "head_rebuilt": True}
    for new_row, old_row in ((0, 2), (2, 0), (3, 1)):
        assert torch.equal(head.weight[new_row], w[old_row])
        assert torch.equal(head.bias[new_row], b[old_row])
    assert not any(torch.equal(head.weight[1], w[i]) for i in range(3))
    # two classes make a binary model: its channel is logit(a) - logit(c)
    module, meta = load_init(path)
    module, report = adapt_classes(module, meta, ["c", "a"], "unet")
    head = module.outc.conv
    assert report == {"kept": ["c", "a"], "new": [], "dropped": ["b"], "head_rebuilt": True}
    assert head.weight.shape[0] == 1
    assert torch.equal(head.weight[0], w[0] - w[2]) and torch.equal(head.bias[0], b[0] - b[2])
    # a foreground whose background the old model lacks starts fresh
    module, meta = load_init(path)
    _, report = adapt_classes(module, meta, ["background", "a"], "unet")
    assert report["kept"] == [] and report["new"] == ["background", "a"]


def _adam_step(module, channels):
    opt = torch.optim.Adam(module.parameters(), lr=1e-2)
    module.train()
    x, y = torch.randn(2, 3, 32, 32), torch.rand(2, channels, 32, 32)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(module(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()


def test_frozen_unet_encoder_stays_bit_identical():
    torch.manual_seed(0)
    net = build_model("unet", 3, 1, base_channels=4, depth=2)
    enc = encoder_parameters(net)
    want = list(net.inc.parameters()) + list(net.downs.parameters())
    assert [id(p) for p in enc] == [id(p) for p in want]
    n = sum(p.numel() for p in enc)
    assert set_encoder_trainable(net, False) == n and set_encoder_trainable(net, False) == 0
    enc_before = [p.detach().clone() for p in enc]
    dec = list(net.ups.parameters()) + list(net.outc.parameters())
    dec_before = [p.detach().clone() for p in dec]
    _adam_step(net, 1)
    assert all(torch.equal(a, p) for a, p in zip(enc_before, enc, strict=True))
    assert all(not torch.equal(a, p) for a, p in zip(dec_before, dec, strict=True))
    assert set_encoder_trainable(net, True) == n and all(p.requires_grad for p in enc)


def test_smp_unet_head_and_encoder():
    torch.manual_seed(0)
    net = build_model("smp_unet", 3, 1, encoder_name="resnet18", encoder_weights_path=None)
    meta = _meta("smp_unet", {"encoder_name": "resnet18"}, ["background", "building"],
                 bands=(1, 2, 3))
    before, old = _state(net), net.segmentation_head[0]
    net, report = adapt_classes(net, meta, ["background", "building", "water"], "smp_unet")
    head = net.segmentation_head[0]
    assert report["kept"] == ["background", "building"] and report["new"] == ["water"]
    assert head.out_channels == 3 and head.kernel_size == old.kernel_size
    assert torch.equal(head.weight[1], before["segmentation_head.0.weight"][0])
    _others_equal(before, net, "segmentation_head.")
    enc = encoder_parameters(net)
    assert {id(p) for p in enc} == {id(p) for p in net.encoder.parameters()}
    assert set_encoder_trainable(net, False) == sum(p.numel() for p in net.encoder.parameters())
    enc_before = [p.detach().clone() for p in enc]
    head_before = head.weight.detach().clone()
    _adam_step(net, 3)
    assert all(torch.equal(a, p) for a, p in zip(enc_before, enc, strict=True))
    assert not torch.equal(head_before, net.segmentation_head[0].weight)


def test_two_logit_smp_model_keeps_two_rows():
    torch.manual_seed(0)
    net = build_model("smp", 3, 1, arch="unet", two_logits=True, **SMP_TINY)
    meta = _meta("smp", {"arch": "unet", "two_logits": True, **SMP_TINY},
                 ["background", "water"], bands=(1, 2, 3))
    w = net.segmentation_head[0].weight.detach().clone()
    with pytest.raises(InvalidOptionError, match="two classes only"):
        adapt_classes(net, meta, ["background", "water", "sand"], "smp")
    net, report = adapt_classes(net, meta, ["background", "lake"], "smp")
    assert report["kept"] == ["background"] and report["new"] == ["lake"]
    head = net.segmentation_head[0]
    assert head.out_channels == 2 and torch.equal(head.weight[0], w[0])
    assert net(torch.randn(1, 3, 32, 32)).shape == (1, 1, 32, 32)


def test_unknown_architecture_is_refused_by_name():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1))
    meta = _meta("mystery", {}, ["background", "building"])
    with pytest.raises(InvalidOptionError, match=r"'mystery'.*no output layer"):
        adapt_classes(net, meta, ["background", "roof", "road"], "mystery")
    with pytest.raises(InvalidOptionError, match=r"Sequential.*--freeze-encoder is not supported"):
        set_encoder_trainable(net, False)


def test_init_band_statistics():
    meta = _meta("unet", {}, ["background", "building"], bands=(1, 2))
    assert init_band_statistics(meta, [10, 20], [1, 2], keep=True) == ([500.0] * 2, [250.0] * 2)
    assert init_band_statistics(meta, [10, 20], [1, 2], keep=False) == ([10.0, 20.0], [1.0, 2.0])
    with pytest.raises(BandCountError, match="takes 2 bands") as err:
        init_band_statistics(meta, [10, 20, 30], [1, 2, 3], keep=True)
    assert isinstance(err.value, ValueError)
