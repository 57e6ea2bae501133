"""Options shared by several subcommands (as ``rasterio/rio/options.py``).

This module imports only click and geounet's light modules, so ``geounet
--help`` does not load torch.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import click

from geounet.errors import InvalidOptionError

Decorator = Callable[[Any], Any]


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


def _pixels_opt(flag: str, default: int | None, what: str) -> Decorator:
    """A ``--FLAG PX`` option whose ``None`` default means the model's recommendation."""
    return click.option(
        flag, type=int, default=default, show_default=default is not None,
        help=f"{what}, in pixels" + (" (default: the model's)." if default is None else "."))


def tile_size_opt(default: int | None = None, what: str = "Tile size") -> Decorator:
    """``--tile-size PX`` (default ``None``: the model's recommendation).

    Args:
        default: Default in pixels, or ``None`` (the model's).
        what: Start of the help text.

    Returns:
        The click option decorator.
    """
    return _pixels_opt("--tile-size", default, what)


def overlap_opt(default: int | None = None, what: str = "Tile overlap") -> Decorator:
    """``--overlap PX`` (default ``None``: the model's recommendation).

    Args:
        default: Default in pixels, or ``None`` (the model's).
        what: Start of the help text.

    Returns:
        The click option decorator.
    """
    return _pixels_opt("--overlap", default, what)


def parse_kv(values: tuple[str, ...]) -> dict[str, Any]:
    """Parse ``KEY=VALUE`` pairs; values are JSON when they parse as JSON.

    Args:
        values: The ``KEY=VALUE`` strings.

    Returns:
        ``{key: value}``.

    Raises:
        InvalidOptionError: for an item without ``=`` or key.
    """
    out: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise InvalidOptionError(f"{item!r} is not KEY=VALUE, e.g. --arch-arg depth=4")
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
