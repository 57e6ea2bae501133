"""The classic U-Net (Ronneberger, Fischer and Brox, 2015, arXiv:1505.04597).

Layout as in the paper and the widely used ``milesial/Pytorch-UNet``:
``DoubleConv`` = (3x3 conv -> BatchNorm -> ReLU) x 2 (padded convolutions, so the
output has the input's size); ``Down`` = 2x2 max-pool then ``DoubleConv``;
``Up`` = bilinear upsampling (or a 2x2 transposed convolution) then padding to
the skip's size, concatenation with the skip and ``DoubleConv``; ``OutConv`` =
1x1 convolution to the class logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from geounet.errors import InvalidOptionError


class DoubleConv(nn.Module):
    """(3x3 conv -> BatchNorm -> ReLU) x 2.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        mid_channels: Channels after the first conv (default ``out_channels``).

    Shape: ``(b, in_channels, h, w)`` -> ``(b, out_channels, h, w)``.
    """

    def __init__(self, in_channels: int, out_channels: int,
                 mid_channels: int | None = None) -> None:
        super().__init__()
        mid = mid_channels or out_channels
        self.double_conv = nn.Sequential(
            nn.Conv2d(in_channels, mid, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.double_conv(x)


class Down(nn.Module):
    """2x2 max-pool then :class:`DoubleConv`; halves ``h`` and ``w``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.pool_conv = nn.Sequential(nn.MaxPool2d(2), DoubleConv(in_channels, out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.pool_conv(x)


class Up(nn.Module):
    """Upsample x2, pad to the skip's size, concatenate the skip, :class:`DoubleConv`.

    Args:
        in_channels: Channels of the concatenated tensor.
        out_channels: Output channels.
        bilinear: Bilinear upsampling (True) or a 2x2 transposed convolution.
    """

    def __init__(self, in_channels: int, out_channels: int, bilinear: bool = True) -> None:
        super().__init__()
        self.up: nn.Module
        if bilinear:
            self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
            self.conv = DoubleConv(in_channels, out_channels, in_channels // 2)
        else:
            self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
            self.conv = DoubleConv(in_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:  # noqa: D102
        x = self.up(x)
        dy = skip.size(2) - x.size(2)
        dx = skip.size(3) - x.size(3)
        x = F.pad(x, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.conv(torch.cat([skip, x], dim=1))


class OutConv(nn.Module):
    """1x1 convolution to ``classes`` logits."""

    def __init__(self, in_channels: int, classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.conv(x)


class UNet(nn.Module):
    """Classic U-Net.

    Args:
        in_channels: Input bands.
        classes: Output channels (1 for a binary sigmoid model, else one logit
            per class for softmax).
        base_channels: Channels of the first level (64 in the paper); level
            ``k`` has ``base_channels * 2**k``.
        depth: Number of down-sampling steps (4 in the paper).
        bilinear: Bilinear upsampling (True) or transposed convolutions.

    Shape: ``(b, in_channels, h, w)`` float32 -> ``(b, classes, h, w)`` logits.
    Any ``h, w`` works (odd sizes are padded inside ``Up``); multiples of
    ``2**depth`` (:attr:`pad_multiple`) avoid the padding.

    Raises:
        InvalidOptionError: (a ``ValueError``) for ``depth`` below 1.
    """

    def __init__(
        self,
        in_channels: int = 3,
        classes: int = 1,
        base_channels: int = 64,
        depth: int = 4,
        bilinear: bool = True,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise InvalidOptionError(f"depth {depth} must be 1 or more")
        self.pad_multiple = 2**depth
        factor = 2 if bilinear else 1
        ch = [base_channels * 2**k for k in range(depth + 1)]
        self.inc = DoubleConv(in_channels, ch[0])
        self.downs = nn.ModuleList(
            Down(ch[k], ch[k + 1] // (factor if k == depth - 1 else 1)) for k in range(depth)
        )
        ups = []
        for k in range(depth, 0, -1):
            out = ch[k - 1] // (factor if k > 1 else 1)
            ups.append(Up(ch[k], out, bilinear))
        self.ups = nn.ModuleList(ups)
        self.outc = OutConv(ch[0], classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        y = skips.pop()
        for up in self.ups:
            y = up(y, skips.pop())
        return self.outc(y)


def build_unet(
    in_channels: int,
    classes: int,
    base_channels: int = 64,
    depth: int = 4,
    bilinear: bool = True,
) -> UNet:
    """Entry-point factory for the ``unet`` architecture.

    Args:
        in_channels: Input bands.
        classes: Output channels (1 for a binary sigmoid model, else one per class).
        base_channels: Channels of the first level.
        depth: Number of down-sampling steps.
        bilinear: Bilinear upsampling (True) or transposed convolutions.

    Returns:
        The :class:`UNet`.

    Raises:
        InvalidOptionError: for ``depth`` below 1.
    """
    return UNet(in_channels, classes, base_channels, depth, bilinear)
