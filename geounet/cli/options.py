"""Options shared by several subcommands (as ``rasterio/rio/options.py``).

This module imports only click and geounet's light modules, so ``geounet
--help`` does not load torch.
"""

from __future__ import annotations

import logging

import click

from geounet.errors import GeounetError


def _setup_logging(ctx: click.Context, verbose: int, quiet: bool) -> None:
    level = logging.ERROR if quiet and not verbose else logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG),
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(max(level, logging.DEBUG))
    ctx.meta["geounet.verbose"] = verbose
    ctx.meta["geounet.quiet"] = quiet


def verbosity(f):
    """Add ``-v/--verbose`` (repeatable) and ``-q/--quiet``."""

    def cb_verbose(ctx, param, value):
        ctx.meta["geounet._v"] = value
        return value

    def cb_quiet(ctx, param, value):
        _setup_logging(ctx, ctx.meta.get("geounet._v", 0), value)
        return value

    f = click.option("-q", "--quiet", is_flag=True, callback=cb_quiet, expose_value=True,
                     help="No progress bar; only errors (unless -v).")(f)
    f = click.option("-v", "--verbose", count=True, callback=cb_verbose, is_eager=True,
                     help="More log output (-vv for debug); -v also shows tracebacks.")(f)
    return f


overwrite_opt = click.option(
    "--overwrite", is_flag=True, help="Replace existing output files (refused otherwise)."
)
device_opt = click.option(
    "--device", default="auto", show_default=True,
    help="auto (CUDA when available), cpu, cuda or cuda:N.",
)
batch_size_opt = click.option("--batch-size", type=int, default=4, show_default=True,
                              help="Tiles per forward pass.")
bands_opt = click.option(
    "--bands", default=None, metavar="1,2,3",
    help="1-based band numbers in model input order (default: the model's bands).",
)


def parse_kv(values: tuple[str, ...]) -> dict:
    """Parse ``KEY=VALUE`` pairs; values are JSON when they parse as JSON."""
    import json

    out = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise GeounetError(f"{item!r} is not KEY=VALUE, e.g. --arch-arg depth=4")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def parse_class_map(spec: str | None) -> dict[str, str] | None:
    """``"1=developed,2=forest"`` or ``"developed,forest"`` -> ordered value->name map.

    Raises:
        click.BadParameter: for an empty value or name.
    """
    if spec is None or not spec.strip():
        return None
    out: dict[str, str] = {}
    for item in spec.split(","):
        value, sep, name = item.partition("=")
        value, name = value.strip(), (name.strip() if sep else value.strip())
        if not value or not name:
            raise click.BadParameter(
                f"{item!r} is not VALUE=NAME or NAME; e.g. --classes 1=developed,2=forest",
                param_hint="--classes")
        out[value] = name
    return out
