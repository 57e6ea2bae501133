"""``geounet import``: a torch model of another tool -> a geounet model file."""

from __future__ import annotations

import click

from geounet.cli.options import overlap_opt, overwrite_opt, parse_kv, tile_size_opt, verbosity
from geounet.errors import InvalidOptionError


def _floats(text: str | None, flag: str) -> list[float] | None:
    """``"1.5,2"`` -> ``[1.5, 2.0]``; ``None`` stays ``None``."""
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise InvalidOptionError(f"{flag} {text!r} is not a comma-separated list of numbers; "
                                 f"e.g. {flag} 480.5,512,530") from None


def _names(text: str | None) -> list[str] | None:
    return None if text is None else [v.strip() for v in text.split(",")]


def _background(text: str | None) -> int | str | None:
    """``--background``: a class id, ``none``, or not given (``"default"``)."""
    if text is None:
        return "default"
    if text.lower() == "none":
        return None
    if not text.isdigit():
        raise InvalidOptionError(f"--background {text!r} is neither a class id nor 'none'; "
                                 "e.g. --background 0")
    return int(text)


@click.command("import")
@click.argument("source", type=click.Path(exists=True), metavar="SRC")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Model file to write: .safetensors (geounet model file) or .onnx.")
@click.option("--name", default=None, help="Model name (default: the source's file name).")
@click.option("--arch", default=None,
              help="Architecture of a plain state dict: smp (any segmentation-models-pytorch "
                   "model, with --arch-arg arch=unet --arch-arg encoder_name=resnet34), "
                   "smp_unet, unet, or one from a plugin.")
@click.option("--arch-arg", multiple=True, metavar="KEY=VALUE",
              help="Architecture argument (JSON value), repeatable; overrides the source's.")
@click.option("--bands", default=None, metavar="1,2,3",
              help="1-based scene bands in model input order (default: 1..N).")
@click.option("--band-names", default=None, metavar="NAME,NAME", help="Names of the bands.")
@click.option("--band-mean", default=None, metavar="M1,M2",
              help="Per-band mean of the training input, in scene units (input is "
                   "(x - mean) / std).")
@click.option("--band-std", default=None, metavar="S1,S2", help="Per-band standard deviation.")
@click.option("--stats-from", type=click.Path(exists=True, dir_okay=False), default=None,
              metavar="SCENE", help="Take --band-mean/--band-std from this scene's bands.")
@click.option("--context-from", type=click.Path(exists=True, dir_okay=False), default=None,
              metavar="SCENE",
              help="Measure the model's context (context_px) on this scene (default: the "
                   "--stats-from scene, else seeded synthetic regions).")
@click.option("--classes", default=None, metavar="NAME,NAME",
              help="Class names by class id (a binary model: background,NAME).")
@click.option("--background", default=None, metavar="ID|none",
              help="Class id not turned into polygons (default: 0 for binary models, none "
                   "for multi-class ones).")
@click.option("--gsd", type=float, default=None, metavar="M",
              help="Ground sample distance of the training data, metres per pixel.")
@tile_size_opt(what="Recommended tile size")
@overlap_opt(what="Recommended tile overlap")
@click.option("--threshold", type=float, default=None,
              help="Probability threshold of a binary model (default: 0.5).")
@click.option("--license", "license_", default=None, metavar="SPDX",
              help="Licence of the weights (e.g. CC-BY-4.0), recorded in the model file.")
@overwrite_opt
@verbosity
def import_cmd(source, output, name, arch, arch_arg, bands, band_names, band_mean, band_std,
               stats_from, context_from, classes, background, gsd, tile_size, overlap, threshold,
               license_, overwrite, quiet, verbose):
    """Import SRC, a torch model of another tool, as a geounet model file.

    SRC is a segmentation-models-pytorch save_pretrained folder (config.json and
    model.safetensors), a torchgeo SemanticSegmentationTask checkpoint (.ckpt) or a
    plain state dict (.pth/.pt, with --arch). Nothing in SRC is unpickled as code.
    What SRC lacks comes from the options; the source and the licence are recorded.
    """
    from geounet.import_model import import_model
    from geounet.io.read import parse_bands

    supplied = dict(
        name=name, architecture=arch, arch_args=parse_kv(arch_arg) or None,
        bands=parse_bands(bands), band_names=_names(band_names),
        band_mean=_floats(band_mean, "--band-mean"), band_std=_floats(band_std, "--band-std"),
        classes=_names(classes), gsd_m=gsd, tile_size_px=tile_size, overlap_px=overlap,
        threshold=threshold, license=license_,
    )
    bg = _background(background)
    if bg != "default":
        supplied["background_class"] = bg
    if (band_mean is None) != (band_std is None):
        raise InvalidOptionError("--band-mean and --band-std go together; pass both, or "
                                 "--stats-from SCENE")
    path = import_model(source, output, stats_from=stats_from, overwrite=overwrite,
                        context_from=context_from, **supplied)
    if not quiet:
        click.echo(f"wrote {path}", err=True)
