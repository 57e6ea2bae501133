"""``geounet train``: scene + label polygons -> model file."""

from __future__ import annotations

import click

from geounet.cli.options import (
    bands_opt,
    device_opt,
    overlap_opt,
    overwrite_opt,
    parse_kv,
    tile_size_opt,
    verbosity,
)
from geounet.constants import DEFAULT_OVERLAP_PX, DEFAULT_TILE_SIZE_PX


@click.command("train")
@click.argument("scene", type=click.Path(dir_okay=False))
@click.argument("labels", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Model file to write (.safetensors).")
@click.option("--arch", default="unet", show_default=True,
              help="Registered architecture: unet, smp_unet, or one from a plugin.")
@click.option("--base-channels", type=int, default=None, help="unet: channels of level 0.")
@click.option("--depth", type=int, default=None, help="unet: number of down-sampling steps.")
@click.option("--encoder", default=None, help="smp_unet: resnet18, resnet34 or resnet50.")
@click.option("--encoder-weights", type=click.Path(dir_okay=False), default=None,
              help="smp_unet: local encoder weights file (.pth/.safetensors); nothing is "
                   "downloaded.")
@click.option("--arch-arg", multiple=True, metavar="KEY=VALUE",
              help="Any other architecture argument (JSON value), repeatable.")
@bands_opt
@click.option("--band-names", default=None, metavar="NAME,NAME",
              help="Names of the bands, stored in the model.")
@click.option("--label-column", default=None,
              help="Attribute with each polygon's class (default: binary, every polygon is 1).")
@click.option("--class-name", default="building", show_default=True,
              help="Name of the foreground class of a binary model.")
@click.option("--classes", "class_spec", default=None, metavar="VALUE=NAME,... | NAME,...",
              help="Classes in id order: label values mapped to names (1=developed,2=forest) "
                   "or the label values themselves (developed,forest). Default: the sorted "
                   "values of --label-column.")
@click.option("--unlabelled", type=click.Choice(["background", "ignore"]), default="background",
              show_default=True,
              help="Pixels outside every polygon: class 0 'background' (dense labels such as "
                   "footprints) or left out of the loss (sparse labels such as land cover).")
@click.option("--val-polygons", type=float, default=None, metavar="FRACTION",
              help="Hold out this fraction of each class's polygons (whole polygons, chosen "
                   "with --seed) for validation.")
@click.option("--class-weighting", type=click.Choice(["none", "balanced"]), default="none",
              show_default=True, help="Cross-entropy weights: none, or inverse class frequency.")
@click.option("--epochs", type=int, default=20, show_default=True)
@click.option("--steps-per-epoch", type=int, default=50, show_default=True)
@click.option("--batch-size", type=int, default=8, show_default=True, help="Tiles per step.")
@tile_size_opt(DEFAULT_TILE_SIZE_PX, what="Training tile size")
@overlap_opt(DEFAULT_OVERLAP_PX, what="Inference overlap stored in the model")
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Adam learning rate.")
@click.option("--lr-schedule", type=click.Choice(["cosine", "constant"]), default="cosine",
              show_default=True, help="Cosine annealing of the learning rate to 0, or constant.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--val-region", default=None,
              help="Held-out region: east:F, west:F, north:F, south:F, px:C0,R0,C1,R1, "
                   "map:MINX,MINY,MAXX,MAXY, or 'none'. Default: east:0.25, or none with "
                   "--val-polygons.")
@click.option("--keep", type=click.Choice(["best", "last"]), default="best", show_default=True,
              help="Keep the epoch with the best validation IoU, or the last epoch (then the "
                   "validation region is a true held-out test).")
@click.option("--name", default=None, help="Model name stored in the file (default: file stem).")
@device_opt
@overwrite_opt
@verbosity
def train_cmd(scene, labels, output, arch, base_channels, depth, encoder, encoder_weights,
              arch_arg, bands, band_names, label_column, class_name, class_spec, unlabelled,
              val_polygons, class_weighting, epochs, steps_per_epoch,
              batch_size, tile_size, overlap, lr, lr_schedule, seed, val_region, keep, name,
              device, overwrite,
              quiet, verbose):
    """Train a model on SCENE with label polygons LABELS."""
    from pathlib import Path

    from geounet._alloc import tune_allocator
    from geounet.io.read import parse_bands
    from geounet.progress import NullProgress, TqdmProgress
    from geounet.training import TrainConfig, train

    tune_allocator()
    from geounet.cli.options import parse_class_map

    args = {}
    if arch == "unet":
        args = {"base_channels": 16, "depth": 4}
    for key, val in (("base_channels", base_channels), ("depth", depth),
                     ("encoder_name", encoder), ("encoder_weights_path", encoder_weights)):
        if val is not None:
            args[key] = val
    args.update(parse_kv(arch_arg))
    if val_region is None:
        val_region = "none" if val_polygons else "east:0.25"
    region = None if val_region.lower() == "none" else val_region
    config = TrainConfig(
        arch=arch,
        arch_args=args,
        bands=parse_bands(bands),
        band_names=band_names.split(",") if band_names else None,
        label_column=label_column,
        class_name=class_name,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        batch_size=batch_size,
        tile_size_px=tile_size,
        overlap_px=overlap,
        lr=lr,
        lr_schedule=lr_schedule,
        seed=seed,
        val_region=region,
        unlabelled=unlabelled,
        class_map=parse_class_map(class_spec),
        val_polygons=val_polygons,
        class_weighting=class_weighting,
        device=device,
        name=name or Path(output).stem,
        keep=keep,
    )
    result = train(scene, labels, output, config,
                   progress=NullProgress() if quiet else TqdmProgress(), overwrite=overwrite)
    if not quiet:
        iou = "n/a" if result.val_iou is None else f"{result.val_iou:.4f}"
        click.echo(f"wrote {result.path}: best epoch {result.best_epoch}, validation IoU {iou}, "
                   f"{result.seconds:.0f} s", err=True)
