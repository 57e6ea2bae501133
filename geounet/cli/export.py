"""``geounet export``: a model file to ONNX (for onnxruntime, Deepness, GeoDeep, other tools)."""

from __future__ import annotations

import click

from geounet.cli.options import overwrite_opt, tile_size_opt, verbosity


@click.command("export")
@click.argument("model", required=False, default=None, metavar="[MODEL]")
@click.option("--onnx", "onnx_out", required=True, type=click.Path(dir_okay=False),
              help="ONNX file to write.")
@tile_size_opt(what="Fixed tile size of the graph")
@click.option("--for", "target", type=click.Choice(["geounet", "geodeep"]), default="geounet",
              show_default=True,
              help="geounet: the graph geounet and Deepness run; geodeep: GeoDeep's variant "
                   "(3 bands in, GeoDeep's scaling undone inside, two output channels).")
@click.option("--scene-dtype", type=click.Choice(["uint8", "uint16"]), default="uint8",
              show_default=True,
              help="With --for geodeep: data type of the scenes GeoDeep will run it on "
                   "(GeoDeep divides uint8 by 255, uint16 by 65535).")
@click.option("--seg-small-segment", type=click.IntRange(min=0), default=0, show_default=True,
              metavar="PX", help="seg_small_segment written for Deepness (median blur) and "
                                 "GeoDeep (sieve); 0 turns both off.")
@overwrite_opt
@verbosity
def export_cmd(model, onnx_out, tile_size, target, scene_dtype, seg_small_segment, overwrite,
               quiet, verbose):
    """Export MODEL (file or bundled name; default: the default model) to ONNX.

    The graph ends in the probabilities, has a dynamic batch dimension and a fixed
    tile size, and carries the metadata the Deepness QGIS plugin and GeoDeep read
    (docs/models.md).
    """
    from geounet.export import export_onnx

    path = export_onnx(model, onnx_out, tile_size_px=tile_size, overwrite=overwrite,
                       target=target, scene_dtype=scene_dtype,
                       seg_small_segment=seg_small_segment)
    if not quiet:
        click.echo(f"wrote {path}", err=True)
