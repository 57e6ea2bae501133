"""Architectures built through the registry: the U-Net, smp's U-Net, entry points."""

import pytest
import torch

from geounet.errors import InputNotFoundError, ModelFileError, UnknownModelError
from geounet.models import architectures, build_model
from geounet.models.unet import UNet


@pytest.mark.parametrize("bilinear", [True, False])
@pytest.mark.parametrize("size", [(64, 64), (50, 70), (33, 17)])
def test_unet_keeps_size(bilinear, size):
    m = UNet(in_channels=3, classes=4, base_channels=4, depth=3, bilinear=bilinear).eval()
    with torch.no_grad():
        y = m(torch.randn(2, 3, *size))
    assert y.shape == (2, 4, *size)


def test_unet_paper_size():
    # the classic U-Net (base 64, depth 4, bilinear) has 17.26 M parameters (milesial/Pytorch-UNet)
    n = sum(p.numel() for p in UNet(3, 2, 64, 4, True).parameters())
    assert 17.2e6 < n < 17.3e6


@pytest.mark.parametrize("encoder", ["resnet18", "resnet34", "resnet50"])
def test_smp_unet_builds_without_download(encoder):
    m = build_model("smp_unet", 4, 3, encoder_name=encoder).eval()
    assert m.pad_multiple == 32
    with torch.no_grad():
        assert m(torch.randn(1, 4, 64, 64)).shape == (1, 3, 64, 64)


def test_smp_unknown_encoder():
    with pytest.raises(UnknownModelError, match="resnet18, resnet34, resnet50"):
        build_model("smp_unet", 3, 1, encoder_name="vgg11")


def test_smp_encoder_weights_from_local_file(tmp_path):
    import torchvision

    tv = torchvision.models.resnet18(weights=None)  # torchvision-style keys, with fc.*
    torch.nn.init.constant_(tv.conv1.weight, 0.125)
    path = tmp_path / "resnet18.pth"
    torch.save(tv.state_dict(), path)
    m = build_model("smp_unet", 3, 1, encoder_name="resnet18", encoder_weights_path=str(path))
    assert torch.all(m.encoder.conv1.weight == 0.125)
    torch.save({"nonsense.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ModelFileError, match="do not fit"):
        build_model("smp_unet", 3, 1, encoder_name="resnet18",
                    encoder_weights_path=str(tmp_path / "bad.pth"))
    with pytest.raises(InputNotFoundError):
        build_model("smp_unet", 3, 1, encoder_name="resnet18",
                    encoder_weights_path=str(tmp_path / "none.pth"))


def test_registry_lists_builtins_through_entry_points():
    archs = architectures()
    assert archs["unet"].target == "geounet.models.unet:build_unet"
    assert archs["smp_unet"].package == "geounet"
    with pytest.raises(UnknownModelError, match="not registered"):
        build_model("segformer", 3, 1)
