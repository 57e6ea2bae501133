"""``geounet export``: a model file to ONNX (for onnxruntime, Deepness, other tools)."""

from __future__ import annotations

import click

from geounet.cli.options import overwrite_opt, tile_size_opt, verbosity


@click.command("export")
@click.argument("model", required=False, default=None, metavar="[MODEL]")
@click.option("--onnx", "onnx_out", required=True, type=click.Path(dir_okay=False),
              help="ONNX file to write.")
@tile_size_opt(what="Fixed tile size of the graph")
@overwrite_opt
@verbosity
def export_cmd(model, onnx_out, tile_size, overwrite, quiet, verbose):
    """Export MODEL (file or bundled name; default: the default model) to ONNX.

    The graph ends in the probabilities, has a dynamic batch dimension and a fixed
    tile size, and carries the metadata the Deepness QGIS plugin reads.
    """
    from geounet.export import export_onnx

    path = export_onnx(model, onnx_out, tile_size_px=tile_size, overwrite=overwrite)
    if not quiet:
        click.echo(f"wrote {path}", err=True)
