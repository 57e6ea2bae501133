"""``geounet predict``: scene -> footprints (and probability/class rasters)."""

from __future__ import annotations

import click

from geounet.cli.options import (
    bands_opt,
    batch_size_opt,
    device_opt,
    overlap_opt,
    overwrite_opt,
    tile_size_opt,
    verbosity,
)
from geounet.config import RUNTIME_NAMES


@click.command("predict")
@click.argument("scenes", nargs=-1, required=True, metavar="SCENE...")
@click.option("-o", "--output", required=True, type=click.Path(),
              help="Vector output: .geojson (EPSG:4326), .gpkg, .fgb or .parquet (scene CRS). "
                   "With several scenes, a folder (OUTDIR/) that gets <scene>.<format> files.")
@click.option("--format", "fmt", type=click.Choice(["geojson", "gpkg", "fgb", "parquet"]),
              default="geojson", show_default=True,
              help="Vector format of the files written into an output folder.")
@click.option("--model", default=None, metavar="NAME|PATH",
              help="Bundled model name (buildings-atlanta, landcover-landsat7; default: "
                   "buildings-atlanta), or a model: a geounet .safetensors file; an .onnx "
                   "graph (geounet export, or Deepness/GeoDeep metadata); a "
                   "segmentation-models-pytorch save_pretrained folder; a torchgeo .ckpt; a "
                   ".pth/.pt state dict. A foreign model that lacks metadata (band "
                   "statistics...) is refused with the geounet import command that adds it.")
@bands_opt
@tile_size_opt()
@overlap_opt()
@batch_size_opt
@device_opt
@click.option("--runtime", type=click.Choice(list(RUNTIME_NAMES)), default="auto",
              show_default=True,
              help="What runs the model: auto = torch when installed, else onnxruntime; fastest "
                   "= time each installed runtime once per model and machine, keep the winner "
                   "(cached); the ONNX runtimes run a .safetensors model's ONNX export, made once "
                   "and cached. -v says which and why.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="auto",
              show_default=True,
              help="torch.autocast dtype; auto = fp16 on CUDA, the measured-faster choice on CPU.")
@click.option("--channels-last/--no-channels-last", default=None,
              help="channels_last memory format (default: on for CUDA).")
@click.option("--threshold", type=float, default=None,
              help="Probability threshold of a binary model (default: model's).")
@click.option("--min-area", type=float, default=0.0, show_default=True,
              help="Drop polygons smaller than this, in square metres.")
@click.option("--simplify", type=float, default=0.0, show_default=True,
              help="Simplification tolerance in metres (0: none).")
@click.option("--sieve", type=float, default=0.0, show_default=True, metavar="M2",
              help="Minimum mapping unit: regions smaller than this (square metres) take the "
                   "class of their largest neighbour, in the class raster and the polygons "
                   "(GDAL's sieve). For land cover.")
@click.option("--tta", type=click.Choice(["none", "flips", "d4"]), default="none",
              show_default=True,
              help="Test-time augmentation: average the probabilities of flipped (3 passes) or "
                   "flipped and rotated (8 passes) tiles.")
@click.option("--split-touching", is_flag=True,
              help="Split footprints of touching buildings (watershed on the distance "
                   "transform).")
@click.option("--split-h", type=float, default=1.0, show_default=True, metavar="M",
              help="--split-touching: how far, in metres, the distance transform must rise "
                   "from the neck to each building's centre for a split.")
@click.option("--fill-holes", type=float, default=0.0, show_default=True, metavar="M2",
              help="Fill holes smaller than this, in square metres.")
@click.option("--regularize", is_flag=True,
              help="Right-angled footprints aligned with each building's orientation "
                   "(buildingregulariser); falls back to the raw polygon when it changes it "
                   "too much.")
@click.option("--regularize-tolerance", type=float, default=1.0, show_default=True,
              metavar="M", help="Regulariser's simplification tolerance in metres.")
@click.option("--regularize-45", is_flag=True, help="Also allow 45-degree edges.")
@click.option("--prob-out", type=click.Path(), default=None,
              help="Also write the probability raster (GeoTIFF); a folder with several scenes.")
@click.option("--prob-dtype", type=click.Choice(["uint8", "float32"]), default="uint8",
              show_default=True, help="uint8 0-255 or float32 0-1 probabilities.")
@click.option("--mask-out", type=click.Path(), default=None,
              help="Also write the class raster (GeoTIFF, uint8, nodata 255); a folder with "
                   "several scenes.")
@click.option("--resample", type=click.Choice(["auto", "off"]), default="auto",
              show_default=True,
              help="Ground resolution: auto = when the scene's GSD differs from the model's by "
                   "more than 10 %, read it at the model's GSD (average when reducing, "
                   "bilinear when enlarging); off = read it as it is. -v logs the decision.")
@click.option("--output-grid", type=click.Choice(["scene", "model"]), default="scene",
              show_default=True,
              help="Grid of --prob-out/--mask-out after resampling: the scene's own, or the "
                   "model-GSD grid the run predicted on.")
@click.option("--cog", is_flag=True,
              help="Write rasters as Cloud Optimized GeoTIFFs (default: tiled GeoTIFFs with "
                   "internal overviews).")
@click.option("--progress", "progress_kind", type=click.Choice(["bar", "json", "none"]),
              default="bar", show_default=True,
              help="Progress as a bar, as JSON lines on stderr (for other programs), or none.")
@click.option("--scheduler", default=None, metavar="ADDRESS|local[:N]",
              help="Run on a Dask distributed cluster (scheduler address), or on a new local "
                   "cluster of N worker processes. Needs geounet[dask].")
@overwrite_opt
@verbosity
def predict_cmd(scenes, output, fmt, model, bands, tile_size, overlap, batch_size, device,
                runtime, precision, channels_last, threshold, min_area, simplify, sieve, tta,
                split_touching, split_h, fill_holes, regularize, regularize_tolerance,
                regularize_45, prob_out, prob_dtype, mask_out, resample, output_grid, cog,
                progress_kind,
                scheduler, overwrite, quiet, verbose):
    """Segment SCENE(s) and write footprints/polygons to OUTPUT.

    SCENE may be a raster, a folder of rasters or a glob pattern; with more than
    one scene OUTPUT is a folder and the model is loaded once.
    """
    import os
    from contextlib import ExitStack
    from pathlib import Path

    from geounet._alloc import tune_allocator
    from geounet.api import predict_scene, predict_scenes
    from geounet.config import (
        OutputConfig,
        PredictConfig,
        ResampleConfig,
        TilingConfig,
        VectorizeConfig,
    )
    from geounet.io.read import parse_bands
    from geounet.pipeline.scenes import expand_scenes
    from geounet.progress import JsonLinesProgress, NullProgress, TqdmProgress

    tune_allocator()
    reporter: JsonLinesProgress | NullProgress | TqdmProgress
    if progress_kind == "json":
        reporter = JsonLinesProgress()
    elif progress_kind == "none" or quiet:
        reporter = NullProgress()
    else:
        reporter = TqdmProgress()
    options = dict(
        bands=parse_bands(bands),
        tiling=TilingConfig(tile_size, overlap),
        predict=PredictConfig(device=device, batch_size=batch_size, precision=precision,
                              runtime=runtime,
                              channels_last=channels_last, tta=tta),
        vectorize=VectorizeConfig(min_area_m2=min_area, simplify_m=simplify, sieve_m2=sieve,
                                  split_touching=split_touching, split_h_m=split_h,
                                  fill_holes_m2=fill_holes,
                                  regularize=regularize,
                                  regularize_tolerance_m=regularize_tolerance,
                                  regularize_45=regularize_45),
        outputs=OutputConfig(prob_dtype=prob_dtype, overwrite=overwrite, cog=cog),
        threshold=threshold,
        resample=ResampleConfig(mode=resample, output_grid=output_grid),
    )
    paths = expand_scenes(scenes)
    folder = len(paths) > 1 or Path(output).is_dir() or output.endswith(os.sep)
    with ExitStack() as stack:
        if scheduler:
            from geounet.distributed import connect

            options["client"] = stack.enter_context(connect(scheduler))
        if folder:
            for d in (output, prob_out, mask_out):
                if d is not None and d.endswith(os.sep) and Path(d).parent.is_dir():
                    Path(d).mkdir(exist_ok=True)
            results = predict_scenes(paths, output, fmt, model=model, prob_out_dir=prob_out,
                                     mask_out_dir=mask_out, progress=reporter, **options)
        else:
            results = [predict_scene(paths[0], output, model=model, prob_out=prob_out,
                                     mask_out=mask_out, progress=reporter, **options)]
    if not quiet:
        for result in results:
            click.echo(
                f"{result.n_polygons} polygons -> {result.output} "
                f"({result.tiles_predicted}/{result.tiles} tiles, {result.seconds:.1f} s)",
                err=True,
            )
