"""The classic U-Net (Ronneberger, Fischer and Brox, 2015, arXiv:1505.04597).

Layout as in the paper and the widely used ``milesial/Pytorch-UNet``:
``DoubleConv`` = (3x3 conv -> BatchNorm -> ReLU) x 2 (padded convolutions, so the
output has the input's size); ``Down`` = 2x2 max-pool then ``DoubleConv``;
``Up`` = bilinear upsampling (or a 2x2 transposed convolution) then padding to
the skip's size, concatenation with the skip and ``DoubleConv``; ``OutConv`` =
1x1 convolution to the class logits.

Bilinear upsampling uses ``align_corners=False`` by default: each output pixel
is placed at the same offset from its input pixels wherever it is in the tile,
so the network is translation-equivariant for shifts by multiples of
``2**depth`` pixels and a pixel's prediction does not depend on the tile's size
or on where it sits in the tile (beyond the model's context, see
:mod:`geounet.models.context`). ``align_corners=True`` (milesial's choice, and
geounet 0.1's) stretches the sampling grid with the input size; model files
written before the option existed record no value and load with ``True``
(:meth:`geounet.models.metadata.ModelMetadata.from_json`).
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
        align_corners: ``align_corners`` of the bilinear upsampling (False:
            translation-equivariant; True: the grid depends on the input size).
    """

    def __init__(self, in_channels: int, out_channels: int, bilinear: bool = True,
                 align_corners: bool = False) -> None:
        super().__init__()
        self.up: nn.Module
        if bilinear:
            self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=align_corners)
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
        align_corners: ``align_corners`` of the bilinear upsampling; False (the
            default) keeps the network translation-equivariant.

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
        align_corners: bool = False,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise InvalidOptionError(f"depth {depth} must be 1 or more")
        self.pad_multiple = 2**depth
        self.align_corners = bool(align_corners) if bilinear else None
        factor = 2 if bilinear else 1
        ch = [base_channels * 2**k for k in range(depth + 1)]
        self.inc = DoubleConv(in_channels, ch[0])
        self.downs = nn.ModuleList(
            Down(ch[k], ch[k + 1] // (factor if k == depth - 1 else 1)) for k in range(depth)
        )
        ups = []
        for k in range(depth, 0, -1):
            out = ch[k - 1] // (factor if k > 1 else 1)
            ups.append(Up(ch[k], out, bilinear, bool(align_corners)))
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
    align_corners: bool = False,
) -> UNet:
    """Entry-point factory for the ``unet`` architecture.

    Args:
        in_channels: Input bands.
        classes: Output channels (1 for a binary sigmoid model, else one per class).
        base_channels: Channels of the first level.
        depth: Number of down-sampling steps.
        bilinear: Bilinear upsampling (True) or transposed convolutions.
        align_corners: ``align_corners`` of the bilinear upsampling (False:
            translation-equivariant, the default since geounet 0.2).

    Returns:
        The :class:`UNet`.

    Raises:
        InvalidOptionError: for ``depth`` below 1.
    """
    return UNet(in_channels, classes, base_channels, depth, bilinear, align_corners)
