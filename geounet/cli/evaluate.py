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
@click.option("--label-column", default=None,
              help="Multi-class truth: the attribute with each polygon's class (PRED must be a "
                   "class raster). Prints a confusion matrix and per-class figures.")
@click.option("--classes", "class_spec", default=None, metavar="VALUE=NAME,...",
              help="Map truth label values to the raster's class names.")
@click.option("--raster-classes", default=None, metavar="NAME,NAME",
              help="Class names by id of PRED (default: its CLASS_NAMES tag).")
@click.option("--rows", default=None, metavar="N,N",
              help="Score only these truth features (0-based positions in the file).")
@click.option("--held-out-of", "held_out_of", default=None, metavar="MODEL",
              help="Score only what MODEL held out of the scene PRED covers: a val/test "
                   "scene whole, a held-out region, or held-out polygons; the model's label "
                   "column and classes are used unless given.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None,
              help="Also write the figures as JSON ('-' for stdout).")
@verbosity
def evaluate_cmd(pred, truth, region, grid, iou_threshold, label_column, class_spec,
                 raster_classes, rows, held_out_of, json_out, quiet, verbose):
    """Score PRED (class raster or footprints) against TRUTH (raster or polygons)."""
    import json

    from geounet.cli.options import parse_class_map
    from geounet.evaluation import evaluate

    class_map = parse_class_map(class_spec)
    try:
        row_list = [int(v) for v in rows.split(",")] if rows else None
    except ValueError:
        raise click.BadParameter(f"{rows!r} is not a list of row numbers, e.g. --rows 2,6,9",
                                 param_hint="--rows") from None
    if held_out_of and rows:
        raise click.UsageError("give --rows or --held-out-of, not both")
    if row_list is not None and label_column is None:
        raise click.UsageError("--rows/--held-out-of score labelled polygons: pass --label-column")
    res = evaluate(pred, truth, region=region, grid=grid, iou_threshold=iou_threshold,
                   label_column=label_column, class_map=class_map,
                   classes=raster_classes.split(",") if raster_classes else None, rows=row_list,
                   held_out_of=held_out_of)
    if json_out == "-":
        click.echo(json.dumps(res.to_dict(), indent=2))
    else:
        if json_out:
            from geounet.io.atomic import atomic_path

            with atomic_path(json_out, overwrite=True) as tmp:
                tmp.write_text(json.dumps(res.to_dict(), indent=2))
        click.echo(f"region: {res.region or 'whole grid'}")
        if res.classes is not None:
            _echo_classes(res.classes)
            return
        p, b = res.pixel, res.buildings
        assert p is not None and b is not None  # binary evaluation fills both
        click.echo(f"pixel     IoU {p.iou:.4f}  precision {p.precision:.4f}  "
                   f"recall {p.recall:.4f}  F1 {p.f1:.4f}  (tp {p.tp}, fp {p.fp}, fn {p.fn})")
        click.echo(f"buildings F1 {b.f1:.4f}  precision {b.precision:.4f}  recall {b.recall:.4f}"
                   f"  @IoU>={b.iou_threshold}  (tp {b.tp}, fp {b.fp}, fn {b.fn}; "
                   f"mean matched IoU {b.mean_iou_matched:.3f})")


def _echo_classes(c) -> None:
    """Per-class table and confusion matrix."""
    def f(v):
        return "   n/a" if v is None else f"{v:.4f}"

    click.echo(f"pixels {c.pixels} in {c.polygons} truth polygons: overall accuracy "
               f"{c.overall_accuracy:.4f}, mean IoU {c.mean_iou:.4f}")
    width = max(8, *(len(n) for n in c.classes))
    click.echo(f"{'class':<{width}}  IoU     precision recall  F1      pixels")
    for name in c.classes:
        m = c.per_class[name]
        click.echo(f"{name:<{width}}  {f(m['iou'])}  {f(m['precision'])}    {f(m['recall'])}  "
                   f"{f(m['f1'])}  {m['support_px']}")
    click.echo("confusion matrix (rows: truth, columns: predicted)")
    click.echo(" " * width + "  " + " ".join(f"{n[:8]:>8}" for n in c.classes))
    for name, row in zip(c.classes, c.confusion, strict=True):
        click.echo(f"{name:<{width}}  " + " ".join(f"{v:>8}" for v in row))
