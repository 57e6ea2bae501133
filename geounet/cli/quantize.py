"""``geounet quantize``: an int8 ONNX graph of a model, calibrated on tiles of a scene (opt-in)."""

from __future__ import annotations

import click

from geounet.cli.options import bands_opt, overwrite_opt, tile_size_opt, verbosity


@click.command("quantize")
@click.argument("model", required=False, default=None, metavar="[MODEL]")
@click.option("--calibration", required=True, type=click.Path(dir_okay=False),
              metavar="SCENE.tif",
              help="Scene to draw calibration tiles from, read and scaled as predict reads it.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              metavar="OUT.onnx", help="int8 ONNX file to write.")
@click.option("--tiles", "n_tiles", type=int, default=16, show_default=True,
              help="Calibration tiles (seeded random positions; all-nodata tiles skipped).")
@tile_size_opt(what="Tile size of the graph and of the calibration tiles")
@bands_opt
@click.option("--region", default=None,
              help="Draw calibration tiles inside this part of the scene only: east:F, west:F, "
                   "north:F, south:F, px:C0,R0,C1,R1 or map:MINX,MINY,MAXX,MAXY (e.g. keep a "
                   "held-out part out of calibration).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the calibration tile positions.")
@click.option("--resample", type=click.Choice(["auto", "off"]), default="auto",
              show_default=True,
              help="Read the calibration scene as predict --resample would: auto = at the "
                   "model's GSD when the scene's differs by more than 10 %; off = as it is.")
@click.option("--per-channel/--per-tensor", default=True, show_default=True,
              help="One int8 weight scale per output channel, or one per tensor.")
@click.option("--quantize-input-convs", is_flag=True,
              help="Also quantise the Conv nodes that read the input bands (kept fp32 by "
                   "default: they cost most of the error).")
@overwrite_opt
@verbosity
def quantize_cmd(model, calibration, output, n_tiles, tile_size, bands, region, seed, resample,
                 per_channel, quantize_input_convs, overwrite, quiet, verbose):
    """Write an int8 (QDQ) ONNX graph of MODEL (file or bundled name; default: the default model).

    Static quantisation with onnxruntime, calibrated on tiles of SCENE. The graph keeps
    geounet's metadata plus how it was quantised, and runs with geounet predict --model
    OUT.onnx --runtime onnxruntime (or openvino). Measure it before use: see
    docs/performance.md, "Reduced precision".
    """
    from geounet.io.read import parse_bands
    from geounet.quantize import QuantizeOptions, quantization_info, quantize_model

    options = QuantizeOptions(n_tiles=n_tiles, seed=seed, region=region,
                              per_channel=per_channel,
                              fp32_input_convs=not quantize_input_convs, resample=resample)
    path = quantize_model(model, calibration, output, tile_size_px=tile_size,
                          bands=parse_bands(bands), options=options, overwrite=overwrite)
    if not quiet:
        info = quantization_info(path) or {}
        cal, check = info.get("calibration", {}), info.get("check", {})
        click.echo(f"wrote {path} (int8 QDQ, {info.get('weights')}; {cal.get('tiles')} "
                   f"calibration tiles of {cal.get('tile_px')} px; on them max |dp| "
                   f"{check.get('max_abs_dp', float('nan')):.4f}, classes agree "
                   f"{100 * check.get('class_agreement', float('nan')):.3f} %)", err=True)
