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
@click.argument("paths", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--dataset", type=click.Path(dir_okay=False), default=None,
              help="CSV with columns scene,labels[,split] (paths relative to it; split "
                   "train/val/test) instead of SCENE LABELS pairs.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Model file to write (.safetensors).")
@click.option("--init", default=None, metavar="MODEL",
              help="Fine-tune: start from this model (bundled name, model file, or what "
                   "'geounet import' reads); its architecture, bands, band statistics and GSD "
                   "are kept, classes matched by name.")
@click.option("--init-band-stats", type=click.Choice(["keep", "recompute"]), default="keep",
              show_default=True, help="With --init: keep its band statistics or recompute them.")
@click.option("--freeze-encoder", "freeze_encoder", type=int, default=0, show_default=True,
              metavar="EPOCHS", help="Train only the decoder for the first EPOCHS epochs.")
@click.option("--augment", default="flips", show_default=True,
              help="Augmentation: none, flips, full (flips + per-band brightness/contrast/"
                   "gamma, blur, noise, scale jitter) or a comma list of flips,photometric,"
                   "blur,noise,scale.")
@click.option("--gsd", "gsd_m", type=float, default=None, metavar="METRES",
              help="Training GSD (default: the --init model's, else the first scene's); "
                   "other scenes are resampled to it.")
@click.option("--workers", type=int, default=None,
              help="Processes reading training windows (default min(4, CPUs-1); 0: none).")
@click.option("--log-dir", type=click.Path(file_okay=False), default=None,
              help="Folder of checkpoints, metrics.jsonl, curves.png and TensorBoard events "
                   "(default: OUTPUT without suffix + .train).")
@click.option("--resume", type=click.Path(), default=None, metavar="CHECKPOINT",
              help="Continue a killed run from its checkpoint (or log folder); same options.")
@click.option("--mixed-precision", type=click.Choice(["auto", "off"]), default="auto",
              show_default=True, help="CUDA: autocast to bfloat16/float16.")
@click.option("--channels-last", type=click.Choice(["auto", "on", "off"]), default="auto",
              show_default=True, help="Channels-last memory format (auto: on CUDA).")
@click.option("--compile", "compile_", is_flag=True, help="Compile the model (torch.compile).")
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
def train_cmd(paths, dataset, output, resume, overwrite, quiet, verbose, **opts):
    """Train a model on SCENE LABELS [SCENE LABELS ...] pairs, or on a --dataset CSV.

    Windows are read from disk (no scene is read whole). Under torchrun
    (torchrun --nproc-per-node N -m geounet train ...) the run is data-parallel.
    """
    import logging
    import os

    from geounet._alloc import tune_allocator
    from geounet.progress import NullProgress, TqdmProgress
    from geounet.training import train
    from geounet.training.dataset import pairs, read_dataset_csv

    tune_allocator()
    if int(os.environ.get("RANK", "0")) > 0:  # torchrun: rank 0 alone reports
        quiet = True
        logging.getLogger("geounet").setLevel(logging.WARNING)
    if dataset and paths:
        raise click.UsageError("give SCENE LABELS pairs or --dataset, not both")
    config = _config(output, dataset, **opts)
    specs = read_dataset_csv(dataset) if dataset else pairs(paths)
    result = train(specs, None, output, config, resume=resume,
                   progress=NullProgress() if quiet else TqdmProgress(), overwrite=overwrite)
    if not quiet:
        iou = "n/a" if result.val_iou is None else f"{result.val_iou:.4f}"
        click.echo(f"wrote {result.path}: best epoch {result.best_epoch}, validation IoU {iou}, "
                   f"{result.seconds:.0f} s; records in {result.log_dir}", err=True)


def _config(output, dataset, *, arch, base_channels, depth, encoder, encoder_weights, arch_arg,
            bands, band_names, class_spec, val_region, val_polygons, tile_size, overlap, name,
            freeze_encoder, compile_, **rest):
    """The :class:`~geounet.training.TrainConfig` of the command's options."""
    from pathlib import Path

    from geounet.cli.options import parse_class_map
    from geounet.io.read import parse_bands
    from geounet.training import TrainConfig

    args = {"base_channels": 16, "depth": 4} if arch == "unet" else {}
    for key, val in (("base_channels", base_channels), ("depth", depth),
                     ("encoder_name", encoder), ("encoder_weights_path", encoder_weights)):
        if val is not None:
            args[key] = val
    args.update(parse_kv(arch_arg))
    if val_region is None:
        val_region = "none" if val_polygons or _has_val_split(dataset) else "east:0.25"
    return TrainConfig(
        arch=arch, arch_args=args, bands=parse_bands(bands),
        band_names=band_names.split(",") if band_names else None,
        class_map=parse_class_map(class_spec), val_polygons=val_polygons,
        val_region=None if val_region.lower() == "none" else val_region,
        tile_size_px=tile_size, overlap_px=overlap, name=name or Path(output).stem,
        freeze_encoder_epochs=freeze_encoder, compile=compile_, **rest)


def _has_val_split(dataset: str | None) -> bool:
    """True when a dataset CSV marks scenes ``val`` (then no region is held out by default)."""
    if not dataset:
        return False
    from geounet.training.dataset import read_dataset_csv

    return any(s.split == "val" for s in read_dataset_csv(dataset))
