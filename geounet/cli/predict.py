"""``geounet predict``: scene -> footprints (and probability/class rasters)."""

from __future__ import annotations

import click

from geounet.cli.options import (
    bands_opt,
    batch_size_opt,
    device_opt,
    overwrite_opt,
    verbosity,
)


@click.command("predict")
@click.argument("scene", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Vector output: .geojson (EPSG:4326), .gpkg, .fgb or .parquet (scene CRS).")
@click.option("--model", default=None, metavar="NAME|PATH",
              help="Bundled model name or .safetensors file (default: buildings-atlanta).")
@bands_opt
@click.option("--tile-size", type=int, default=None, help="Tile size in pixels (default: model's).")
@click.option("--overlap", type=int, default=None, help="Tile overlap in pixels (default: model's).")
@batch_size_opt
@device_opt
@click.option("--amp/--no-amp", default=True, show_default=True,
              help="fp16 mixed precision on CUDA (no effect on CPU).")
@click.option("--threshold", type=float, default=None,
              help="Probability threshold of a binary model (default: model's).")
@click.option("--min-area", type=float, default=0.0, show_default=True,
              help="Drop polygons smaller than this, in square metres.")
@click.option("--simplify", type=float, default=0.0, show_default=True,
              help="Simplification tolerance in metres (0: none).")
@click.option("--prob-out", type=click.Path(dir_okay=False), default=None,
              help="Also write the probability raster (GeoTIFF).")
@click.option("--prob-dtype", type=click.Choice(["uint8", "float32"]), default="uint8",
              show_default=True, help="uint8 0-255 or float32 0-1 probabilities.")
@click.option("--mask-out", type=click.Path(dir_okay=False), default=None,
              help="Also write the class raster (GeoTIFF, uint8, nodata 255).")
@click.option("--progress", "progress_kind", type=click.Choice(["bar", "json", "none"]),
              default="bar", show_default=True,
              help="Progress as a bar, as JSON lines on stderr (for other programs), or none.")
@overwrite_opt
@verbosity
def predict_cmd(scene, output, model, bands, tile_size, overlap, batch_size, device, amp,
                threshold, min_area, simplify, prob_out, prob_dtype, mask_out, progress_kind,
                overwrite, quiet, verbose):
    """Segment SCENE and write footprints/polygons to OUTPUT."""
    from geounet._alloc import tune_allocator
    from geounet.config import OutputConfig, PredictConfig, TilingConfig, VectorizeConfig
    from geounet.io.read import parse_bands
    from geounet.pipeline import predict_scene
    from geounet.progress import JsonLinesProgress, NullProgress, TqdmProgress

    tune_allocator()
    if progress_kind == "json":
        reporter = JsonLinesProgress()
    elif progress_kind == "none" or quiet:
        reporter = NullProgress()
    else:
        reporter = TqdmProgress()
    result = predict_scene(
        scene,
        output,
        model=model,
        bands=parse_bands(bands),
        tiling=TilingConfig(tile_size, overlap),
        predict=PredictConfig(device=device, batch_size=batch_size, amp=amp),
        vectorize=VectorizeConfig(min_area_m2=min_area, simplify_m=simplify),
        outputs=OutputConfig(prob_dtype=prob_dtype, overwrite=overwrite),
        threshold=threshold,
        prob_out=prob_out,
        mask_out=mask_out,
        progress=reporter,
    )
    if not quiet:
        click.echo(
            f"{len(result.footprints)} polygons -> {result.output} "
            f"({result.tiles_predicted}/{result.tiles} tiles, {result.seconds:.1f} s)",
            err=True,
        )
