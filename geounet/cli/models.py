"""``geounet models``: registered architectures and bundled model files."""

from __future__ import annotations

import click

from geounet.cli.options import verbosity


@click.command("models")
@verbosity
def models_cmd(quiet, verbose):
    """List model architectures (entry-point group geounet.models) and bundled models."""
    from geounet.models.modelfile import read_metadata
    from geounet.models.registry import DEFAULT_MODEL, architectures, bundled_models

    click.echo("Architectures (entry-point group 'geounet.models'):")
    for arch in sorted(architectures().values(), key=lambda a: a.name):
        click.echo(f"  {arch.name:<12} {arch.target}  [{arch.package}]")
    click.echo("Bundled models:")
    for name, path in bundled_models().items():
        meta = read_metadata(path)
        ev = meta.evaluation or {}
        figs = ", ".join(f"{k} {v}" for k, v in ev.items() if isinstance(v, (int, float)))
        mark = " (default)" if name == DEFAULT_MODEL else ""
        click.echo(f"  {name}{mark}: {meta.architecture}, bands {meta.bands}, classes "
                   f"{meta.classes}, GSD {meta.gsd_m} m, tile {meta.tile_size_px} px"
                   + (f"; held-out {figs}" if figs else ""))
        click.echo(f"      {path}")
