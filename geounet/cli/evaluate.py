"""``geounet evaluate``: pixel and per-building scores of a prediction."""

from __future__ import annotations

import click

from geounet.cli.options import verbosity


@click.command("evaluate")
@click.argument("pred", type=click.Path(dir_okay=False))
@click.argument("truth", type=click.Path(dir_okay=False))
@click.option("--region", default=None,
              help="Score only this part: east:F, west:F, north:F, south:F, px:C0,R0,C1,R1 or "
                   "map:MINX,MINY,MAXX,MAXY.")
@click.option("--grid", type=click.Path(dir_okay=False), default=None,
              help="Raster whose grid to count pixels on when PRED and TRUTH are both vectors.")
@click.option("--iou-threshold", type=float, default=0.5, show_default=True,
              help="IoU a footprint match needs (SpaceNet: 0.5).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None,
              help="Also write the figures as JSON ('-' for stdout).")
@verbosity
def evaluate_cmd(pred, truth, region, grid, iou_threshold, json_out, quiet, verbose):
    """Score PRED (class raster or footprints) against TRUTH (raster or polygons)."""
    import json

    from geounet.metrics import evaluate

    res = evaluate(pred, truth, region=region, grid=grid, iou_threshold=iou_threshold)
    if json_out == "-":
        click.echo(json.dumps(res.to_dict(), indent=2))
    else:
        if json_out:
            from geounet.io.atomic import atomic_path

            with atomic_path(json_out, overwrite=True) as tmp:
                tmp.write_text(json.dumps(res.to_dict(), indent=2))
        p, b = res.pixel, res.buildings
        click.echo(f"region: {res.region or 'whole grid'}")
        click.echo(f"pixel     IoU {p.iou:.4f}  precision {p.precision:.4f}  "
                   f"recall {p.recall:.4f}  F1 {p.f1:.4f}  (tp {p.tp}, fp {p.fp}, fn {p.fn})")
        click.echo(f"buildings F1 {b.f1:.4f}  precision {b.precision:.4f}  recall {b.recall:.4f}"
                   f"  @IoU>={b.iou_threshold}  (tp {b.tp}, fp {b.fp}, fn {b.fn}; "
                   f"mean matched IoU {b.mean_iou_matched:.3f})")
