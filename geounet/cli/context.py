"""``geounet measure-context``: measure a model's context and store it in a copy."""

from __future__ import annotations

import click

from geounet.cli.options import bands_opt, device_opt, overwrite_opt, tile_size_opt, verbosity


@click.command("measure-context")
@click.argument("model", required=False)
@click.argument("scene", required=False, type=click.Path(exists=True, dir_okay=False))
@tile_size_opt(what="Tile size of the measurement")
@bands_opt
@click.option("--regions", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Regions of the scene to measure (25 tiles each).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the region positions.")
@click.option("--percentile", type=click.FloatRange(50, 100), default=99.9, show_default=True,
              help="Percentile of |dp| per distance compared with --tol.")
@click.option("--tol", type=click.FloatRange(0, 1, min_open=True), default=0.01,
              show_default=True, help="Largest probability change counted as no change.")
@click.option("--runtime", type=click.Choice(["auto", "torch", "onnxruntime", "openvino"]),
              default="auto", show_default=True, help="What runs the model.")
@device_opt
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write a copy of MODEL (.safetensors) with context_px, the figures and the "
                   "tiling they recommend.")
@overwrite_opt
@verbosity
def context_cmd(model, scene, tile_size, bands, regions, seed, percentile, tol, runtime, device,
                output, overwrite, quiet, verbose):
    """Measure how far from a tile edge MODEL's predictions still change, on SCENE.

    MODEL is a model file or bundled name (default: the default model); SCENE a raster
    like those the model segments (default: seeded synthetic regions). Prints the
    context in pixels, the |dp| profile and the tile size and overlap it recommends.
    """
    from dataclasses import replace

    from geounet.config import PredictConfig
    from geounet.context import context_metadata
    from geounet.io.read import parse_bands
    from geounet.measure_context import measure_context
    from geounet.models.modelfile import as_loaded, save_metadata

    loaded = as_loaded(model, lazy=True)
    config = PredictConfig(device=device, runtime=runtime)
    m = measure_context(loaded, scene, tile_size_px=tile_size, config=config, regions=regions,
                        seed=seed, percentile=percentile, tol_dp=tol, bands=parse_bands(bands))
    fixed = loaded.format == "onnx"
    changes = context_metadata(loaded.metadata, m, retile=not fixed)
    if not quiet:
        state = "" if m.converged else " (NOT converged: a lower bound)"
        click.echo(f"{loaded.metadata.name}: context {m.context_px} px{state}; "
                   f"p{m.percentile:g} |dp| <= {m.tol_dp:g} beyond it, measured up to "
                   f"{m.measurable_px} px on {m.regions} regions of {m.scene} "
                   f"({m.samples} samples, {m.tile_size_px} px tiles)")
        step = max(1, len(m.profile) // 12)
        click.echo(f"  p{m.percentile:g} |dp| by distance: " + ", ".join(
            f"{d} px {q:.3f}" for d, q in list(enumerate(m.profile))[::step]))
        click.echo(f"  recommended: --tile-size {changes['tile_size_px']} "
                   f"--overlap {changes['overlap_px']}")
    if output is not None:
        path = save_metadata(loaded, output, replace(loaded.metadata, **changes), overwrite)
        if not quiet:
            click.echo(f"wrote {path}", err=True)
