"""geounet.training.augment: kornia augmentation of standardised tiles and their labels."""

import json
import sys

import pytest
import torch

from geounet.constants import CLASS_NODATA
from geounet.errors import InvalidOptionError, MissingDependencyError
from geounet.training.augment import (
    AUGMENT_PRESETS,
    AugmentConfig,
    Augmenter,
    parse_augment,
)


def batch(b=8, c=3, t=16, seed=0):
    """Standardised-looking tiles, labels 0..2 with a 255 strip, band 0 equal to the labels."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, c, t, t, generator=g)
    y = torch.randint(0, 3, (b, t, t), generator=g)
    y[:, :3, :5] = CLASS_NODATA
    x[:, 0] = y.float()
    return x, y


def dihedral(a):
    """The eight rotations/flips of the last two axes of ``a``."""
    rots = [torch.rot90(a, k, dims=(-2, -1)) for k in range(4)]
    return rots + [r.flip(-1) for r in rots]


@pytest.mark.parametrize("c", [1, 3, 6])
def test_shapes_dtypes_and_label_set_are_kept(c):
    x, y = batch(c=c)
    torch.manual_seed(1)
    xo, yo = Augmenter(AUGMENT_PRESETS["full"])(x, y)
    assert xo.shape == x.shape and xo.dtype == torch.float32 and xo.device == x.device
    assert yo.shape == y.shape and yo.dtype == torch.int64 and yo.device == y.device
    assert set(yo.unique().tolist()) <= {0, 1, 2, CLASS_NODATA}
    assert torch.isfinite(xo).all()


def test_none_returns_the_inputs_unchanged():
    x, y = batch()
    xo, yo = Augmenter(parse_augment("none"))(x, y)
    assert torch.equal(xo, x) and torch.equal(yo, y)


def test_flips_move_image_and_labels_alike_without_interpolation():
    x, y = batch(b=64)
    torch.manual_seed(2)
    xo, yo = Augmenter(parse_augment("flips"))(x, y)
    assert torch.equal(xo[:, 0], yo.float())  # band 0 was the labels: same motion, exact values
    seen = set()
    for i in range(len(x)):  # every tile is one of the 8 symmetries of its input, exactly
        hits = [j for j, d in enumerate(dihedral(x[i])) if torch.equal(d, xo[i])]
        assert hits, f"tile {i} is not a rotation/flip of its input"
        assert torch.equal(yo[i], dihedral(y[i])[hits[0]])
        seen.add(hits[0])
    assert seen == set(range(8))
    assert (yo == CLASS_NODATA).sum() == (y == CLASS_NODATA).sum()


def test_scale_pads_labels_with_nodata_and_keeps_alignment():
    t = 15  # labels row * 15 + col (< 255), bands 0 and 1 the row and column ramps + 1
    rows, cols = torch.meshgrid(torch.arange(t), torch.arange(t), indexing="ij")
    y = (rows * t + cols).expand(6, t, t).clone()
    x = (torch.stack([rows.float(), cols.float()]) + 1).expand(6, 2, t, t).clone()
    cfg = AugmentConfig(scale=True, scale_range=(0.6, 0.8), scale_p=1.0)
    torch.manual_seed(3)
    xo, yo = Augmenter(cfg)(x, y)
    pad = yo == CLASS_NODATA
    assert pad.flatten(1).any(1).all()  # zoomed out: every tile has a padded border
    assert not pad[:, t // 2, t // 2].any() and pad[:, 0, 0].all()
    assert torch.isfinite(xo).all() and (xo[:, :, 0, 0] >= 1).all()  # inputs reflected, not 0
    ok = ~pad  # nearest label and bilinear ramps agree to half a pixel
    assert (xo[:, 0][ok] - 1 - (yo[ok] // t).float()).abs().max() <= 0.5 + 1e-4
    assert (xo[:, 1][ok] - 1 - (yo[ok] % t).float()).abs().max() <= 0.5 + 1e-4
    assert set(yo[ok].tolist()) <= set(y.flatten().tolist())
    torch.manual_seed(3)
    _, yi = Augmenter(AugmentConfig(scale=True, scale_range=(1.2, 1.4), scale_p=1.0))(x, y)
    assert not (yi == CLASS_NODATA).any()  # zoomed in: nothing comes from outside


def test_photometric_changes_each_band_on_its_own_and_never_the_labels():
    x, y = batch(b=4, c=2)
    x[:, 1] = x[:, 0] = torch.randn(4, 16, 16)
    x[:, :, -4:, -4:] = 0  # nodata in every band
    torch.manual_seed(4)
    xo, yo = Augmenter(parse_augment("photometric"))(x, y)
    assert torch.equal(yo, y)
    assert not torch.allclose(xo[:, 0], xo[:, 1], atol=1e-3)  # two equal bands, own factors
    assert not torch.allclose(xo, x, atol=1e-3)
    assert (xo[:, :, -4:, -4:] == 0).all()
    torch.manual_seed(4)  # gamma alone keeps each band's range (mapped to 0..1 and back)
    xg, _ = Augmenter(AugmentConfig(photometric=True, brightness=0, contrast=0))(x, y)
    assert not torch.allclose(xg, x, atol=1e-3)
    assert not torch.allclose(xg[:, 0], xg[:, 1], atol=1e-3)
    for f in (torch.amin, torch.amax):
        assert torch.allclose(f(xg, dim=(2, 3)), f(x, dim=(2, 3)), atol=1e-5)


def test_blur_and_noise_change_the_image_only():
    x, y = batch(b=4, c=3, t=32)
    x[:, 0] = torch.randn(4, 32, 32)
    torch.manual_seed(5)
    xb, yb = Augmenter(AugmentConfig(blur=True, blur_p=1.0))(x, y)
    assert torch.equal(yb, y) and xb.std() < 0.9 * x.std()  # white noise loses variance
    torch.manual_seed(5)
    xn, yn = Augmenter(AugmentConfig(noise=True, noise_std=0.1, noise_p=1.0))(x, y)
    assert torch.equal(yn, y)
    assert (xn - x).std().item() == pytest.approx(0.1, rel=0.1)
    assert not torch.allclose(xn[0] - x[0], xn[1] - x[1], atol=1e-3)  # own noise per tile


def test_randomness_comes_from_the_global_seed():
    x, y = batch()
    aug = Augmenter(AUGMENT_PRESETS["full"])
    outs = []
    for seed in (7, 7, 8):
        torch.manual_seed(seed)
        outs.append(aug(x, y))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])
    assert not torch.equal(outs[0][0], outs[2][0])


def test_parse_augment_presets_lists_and_errors():
    assert parse_augment("flips") == AugmentConfig(flips=True)
    assert parse_augment("none") == AugmentConfig()
    assert parse_augment("full").enabled == ("flips", "photometric", "blur", "noise", "scale")
    assert parse_augment(" scale, flips ").enabled == ("flips", "scale")
    with pytest.raises(InvalidOptionError, match=r"'bogus'.*none, flips, full.*--augment"):
        parse_augment("bogus")
    with pytest.raises(ValueError, match="'blurr'"):
        parse_augment("flips,blurr")
    with pytest.raises(InvalidOptionError):
        parse_augment("")
    with pytest.raises(InvalidOptionError, match="brightness"):
        AugmentConfig(brightness=1.5)
    with pytest.raises(InvalidOptionError, match="scale_range"):
        AugmentConfig(scale_range=(1.4, 0.7))


def test_to_dict_is_json_and_round_trips():
    cfg = parse_augment("full")
    d = json.loads(json.dumps(cfg.to_dict()))
    assert d["scale_range"] == [0.7, 1.4] and d["flips"] is True
    assert AugmentConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}) == cfg


def test_bad_shapes_and_missing_kornia_are_refused(monkeypatch):
    x, y = batch()
    with pytest.raises(ValueError, match=r"\(b, c, t, t\)"):
        Augmenter(AUGMENT_PRESETS["flips"])(x[0], y[0])
    monkeypatch.setitem(sys.modules, "kornia", None)
    with pytest.raises(MissingDependencyError, match=r"geounet\[torch\]"):
        Augmenter(AUGMENT_PRESETS["flips"])
