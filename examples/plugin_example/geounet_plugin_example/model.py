"""A tiny architecture registered in the ``geounet.models`` entry-point group."""

from torch import nn


class TinyNet(nn.Module):
    """Two 3x3 convolutions: ``(b, in_channels, h, w)`` -> ``(b, classes, h, w)`` logits."""

    pad_multiple = 1

    def __init__(self, in_channels: int, classes: int, width: int = 8):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(width, classes, 3, padding=1),
        )

    def forward(self, x):  # noqa: D102
        return self.body(x)


def build_tinynet(in_channels: int, classes: int, width: int = 8) -> TinyNet:
    """Factory geounet calls with the model file's ``arch_args``."""
    return TinyNet(in_channels, classes, width)
