"""Training augmentation on the GPU batch, through kornia.augmentation.

Groups (``--augment``, parsed by :func:`parse_augment`; presets in :data:`AUGMENT_PRESETS`):

- ``flips``: a random multiple of 90 degrees and a horizontal flip (the eight symmetries of the
  square, equally likely), image and labels alike. What the trainer did before.
- ``photometric``: per band, random gamma, gain and offset, so that each band gets its own
  radiometry, as another sensor's or another date's would.
- ``blur``: Gaussian blur (a softer sensor, or a coarser scene resampled to the model's GSD).
- ``noise``: additive Gaussian noise.
- ``scale``: random zoom of image and labels alike (ground resolution jitter).

Inputs are standardised tiles (per band z-scores; nodata is 0 in every band) and labels where
:data:`~geounet.constants.CLASS_NODATA` (255) is left out of the loss. Intensity groups run first,
on the tile as it was read, and leave pixels that are 0 in every band (nodata, padding) at 0; the
geometric groups follow. All randomness comes from torch's global generator, so
``torch.manual_seed`` before a call makes it repeatable.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

from geounet.constants import CLASS_NODATA
from geounet.errors import InvalidOptionError
from geounet.models.metadata import import_optional

GROUPS = ("flips", "photometric", "blur", "noise", "scale")
"""Names of the augmentation groups, in the order :class:`Augmenter` applies them."""


@dataclass(frozen=True)
class AugmentConfig:
    """Which augmentation groups are on, and how strong they are.

    Intensities are in standardised units (one unit = one standard deviation of the band over
    the scene), sizes in pixels of the tile.

    Attributes:
        flips: Random rot90 (k uniform in 0..3) and horizontal flip.
        photometric: Per-band random gamma, contrast and brightness.
        blur: Random Gaussian blur, with probability ``blur_p``.
        noise: Random Gaussian noise, with probability ``noise_p``.
        scale: Random zoom, with probability ``scale_p``.
        brightness: Offset drawn uniformly from ``±brightness`` std (0.2: a shift of a fifth of
            the band's spread, a change of sun angle or haze). 0..1.
        contrast: Gain about the scene mean drawn uniformly from ``1 ± contrast`` (0.2). 0..<1.
        gamma: Exponent drawn uniformly from ``1 / (1 + gamma) .. 1 + gamma`` (0.25: 0.8..1.25),
            applied to each band of each tile mapped to 0..1 by its own minimum and maximum
            (gamma needs non-negative values) and mapped back, so the band keeps its range.
        blur_sigma: Range of the blur's standard deviation in pixels (0.3..1.2: from barely
            softer to the look of a 0.8 m scene resampled to 0.5 m).
        blur_p: Probability that a tile is blurred (0.25).
        noise_std: Standard deviation of the noise in std units (0.05: SNR about 20 in the
            band's own spread).
        noise_p: Probability that a tile gets noise (0.25).
        scale_range: Range of the zoom factor (> 1: objects larger), drawn uniformly. The
            default 0.7..1.4 is about symmetric in log scale (ln 0.7 = -0.36, ln 1.4 = +0.34) and
            covers a scene of 0.36..0.71 m shown to a 0.5 m model at its own GSD. Prediction
            resamples scenes to the model's GSD by default (``--resample auto``, 10 %
            tolerance), so 0.3 m and 0.8 m scenes reach the model near 0.5 m anyway; what is
            left is sharpness (``blur``) and the residual and natural size spread, which this
            range covers with margin. For ``--resample off`` on 0.3..0.8 m scenes use
            ``(0.625, 1.67)``; a wider zoom-out pads most of the tile (left out of the loss).
        scale_p: Probability that a tile is zoomed (0.5).

    Raises:
        InvalidOptionError: for a strength or probability outside its range.
    """

    flips: bool = False
    photometric: bool = False
    blur: bool = False
    noise: bool = False
    scale: bool = False
    brightness: float = 0.2
    contrast: float = 0.2
    gamma: float = 0.25
    blur_sigma: tuple[float, float] = (0.3, 1.2)
    blur_p: float = 0.25
    noise_std: float = 0.05
    noise_p: float = 0.25
    scale_range: tuple[float, float] = (0.7, 1.4)
    scale_p: float = 0.5

    def __post_init__(self) -> None:
        checks = [("brightness", self.brightness, 0 <= self.brightness <= 1, "0.2"),
                  ("contrast", self.contrast, 0 <= self.contrast < 1, "0.2"),
                  ("gamma", self.gamma, self.gamma >= 0, "0.25"),
                  ("noise_std", self.noise_std, self.noise_std >= 0, "0.05"),
                  ("blur_sigma", self.blur_sigma, 0 < self.blur_sigma[0] <= self.blur_sigma[1],
                   "(0.3, 1.2)"),
                  ("scale_range", self.scale_range,
                   0 < self.scale_range[0] <= self.scale_range[1], "(0.7, 1.4)")]
        checks += [(n, getattr(self, n), 0 <= getattr(self, n) <= 1, "0.25")
                   for n in ("blur_p", "noise_p", "scale_p")]
        for name, value, ok, example in checks:
            finite = all(map(math.isfinite, value if isinstance(value, tuple) else [value]))
            if not ok or not finite:
                raise InvalidOptionError(
                    f"augmentation {name} {value!r} is out of range; use e.g. {name}={example}")

    @property
    def enabled(self) -> tuple[str, ...]:
        """Names of the groups that are on, in :data:`GROUPS` order."""
        return tuple(g for g in GROUPS if getattr(self, g))

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-serialisable (tuples as lists), for the model's metadata."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


AUGMENT_PRESETS: dict[str, AugmentConfig] = {
    "none": AugmentConfig(),
    "flips": AugmentConfig(flips=True),
    "full": AugmentConfig(flips=True, photometric=True, blur=True, noise=True, scale=True),
}
"""Named augmentation settings: ``none``, ``flips`` (the trainer's default) and ``full``."""


def parse_augment(spec: str) -> AugmentConfig:
    """Read an ``--augment`` value: a preset name or a comma list of groups.

    Args:
        spec: ``"none"``, ``"flips"``, ``"full"``, or groups such as ``"flips,photometric,scale"``
            (spaces around names are ignored).

    Returns:
        The configuration, with the default strengths.

    Raises:
        InvalidOptionError: for an empty spec or a name that is neither a preset nor a group.
    """
    name = spec.strip()
    if name in AUGMENT_PRESETS:
        return AUGMENT_PRESETS[name]
    groups = [g.strip() for g in name.split(",")]
    bad = [g for g in groups if g not in GROUPS]
    if not name or bad:
        raise InvalidOptionError(
            f"augmentation {', '.join(map(repr, bad or [spec]))} is not understood: expected a "
            f"preset ({', '.join(AUGMENT_PRESETS)}) or a comma list of {', '.join(GROUPS)}; "
            "pass e.g. --augment flips,photometric")
    on: dict[str, Any] = dict.fromkeys(groups, True)
    return AugmentConfig(**on)


class Augmenter:
    """Random augmentation of a batch of standardised tiles and their labels, on their device.

    kornia is imported here (``geounet[torch]``). Calls used: ``RandomRotation90`` (nearest, so
    image values are moved, never interpolated) and ``RandomHorizontalFlip``; ``RandomAffine``
    (zoom only) with bilinear images and ``padding_mode="reflection"``, all in one
    ``AugmentationSequential`` whose masks are resampled nearest with zero padding;
    ``RandomGamma``, ``RandomContrast`` and ``RandomBrightness`` (``clip_output=False``) on the
    bands folded into the batch, ``(b * c, 1, t, t)``, so each band draws its own factors;
    ``RandomGaussianBlur`` and ``RandomGaussianNoise`` on the whole tile.

    Labels travel as ``y + 1`` in float32, so the zero padding of pixels that come from outside
    the tile reads 0 and becomes :data:`~geounet.constants.CLASS_NODATA`; 255 itself survives.

    Args:
        config: The groups and their strengths.

    Raises:
        MissingDependencyError: when kornia is not installed.
    """

    def __init__(self, config: AugmentConfig) -> None:
        kornia = import_optional("kornia", extra="torch")
        k, c = kornia.augmentation, config
        self.config = config
        self._photometric = None
        if c.photometric:
            self._photometric = (
                k.RandomGamma(gamma=(1 / (1 + c.gamma), 1 + c.gamma), p=1.0),
                k.RandomContrast(contrast=(1 - c.contrast, 1 + c.contrast), clip_output=False),
                k.RandomBrightness(brightness=(1 - c.brightness, 1 + c.brightness),
                                   clip_output=False))
        ksize = 2 * math.ceil(3 * c.blur_sigma[1]) + 1
        self._blur = (k.RandomGaussianBlur(ksize, c.blur_sigma, border_type="reflect", p=c.blur_p)
                      if c.blur else None)
        self._noise = k.RandomGaussianNoise(std=c.noise_std, p=c.noise_p) if c.noise else None
        steps = []
        if c.flips:  # k = a + 2b with a, b fair coins: 0..3 equally likely
            steps += [k.RandomRotation90(times=(1, 1), resample="nearest", p=0.5),
                      k.RandomRotation90(times=(2, 2), resample="nearest", p=0.5),
                      k.RandomHorizontalFlip(p=0.5)]
        if c.scale:
            steps.append(k.RandomAffine(degrees=0.0, scale=c.scale_range,
                                        padding_mode="reflection", p=c.scale_p))
        const = kornia.constants
        mask_args = {"resample": const.Resample.NEAREST, "align_corners": None,
                     "padding_mode": const.SamplePadding.ZEROS}
        self._geometric = (k.AugmentationSequential(*steps, data_keys=["input", "mask"],
                                                    extra_args={const.DataKey.MASK: mask_args})
                           if steps else None)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment a batch.

        Args:
            x: ``(b, c, t, t)`` float32 standardised tiles (0 in every band: nodata).
            y: ``(b, t, t)`` int64 class ids, ``CLASS_NODATA`` (255): not trained on.

        Returns:
            New ``(x, y)`` tensors of the same shapes, dtypes and device. Pixels of ``y`` that
            the zoom brought in from outside the tile are ``CLASS_NODATA``.

        Raises:
            ValueError: when ``x`` is not 4-D with square tiles or ``y`` does not match it.
        """
        if x.ndim != 4 or x.shape[-1] != x.shape[-2] or y.shape != (x.shape[0], *x.shape[2:]):
            raise ValueError(f"augment expects x (b, c, t, t) and y (b, t, t); got x "
                             f"{tuple(x.shape)} and y {tuple(y.shape)}")
        x, y = x.clone(), y.clone()
        with torch.no_grad():
            x = self._intensity(x)
            if self._geometric is not None:
                x, m = self._geometric(x, (y + 1).unsqueeze(1).to(torch.float32))
                ids = m[:, 0].round().to(y.dtype)
                y = torch.where(ids == 0, torch.full_like(ids, CLASS_NODATA), ids - 1)
        return x.contiguous(), y.contiguous()

    def _intensity(self, x: torch.Tensor) -> torch.Tensor:
        """Photometric, blur and noise; pixels that are 0 in every band stay 0."""
        if self._photometric is None and self._blur is None and self._noise is None:
            return x
        valid = (x != 0).any(dim=1, keepdim=True)
        if self._photometric is not None:
            b, c, h, w = x.shape
            v = x.reshape(b * c, 1, h, w)
            lo, hi = v.amin(dim=(2, 3), keepdim=True), v.amax(dim=(2, 3), keepdim=True)
            span = (hi - lo).clamp_min(1e-6)
            gamma, contrast, brightness = self._photometric
            v = gamma((v - lo) / span) * span + lo
            x = brightness(contrast(v)).reshape(b, c, h, w)
        if self._blur is not None:
            x = self._blur(x)
        if self._noise is not None:
            x = self._noise(x)
        return x * valid
