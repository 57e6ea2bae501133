"""The ``geounet`` command line: a thin layer over the Python API.

One module per subcommand (as ``rasterio/rio/``). Every
:class:`~geounet.errors.GeounetError` becomes a one-line ``Error: ...`` message
and exit status 1; ``-v`` adds the traceback.
"""

from __future__ import annotations

import logging
import sys

import click

from geounet import __version__
from geounet.errors import GeounetError

log = logging.getLogger(__name__)


class GeounetGroup(click.Group):
    """Click group that turns geounet errors into one-line messages."""

    def invoke(self, ctx: click.Context):  # noqa: D102
        try:
            return super().invoke(ctx)
        except GeounetError as exc:
            if ctx.meta.get("geounet.verbose", 0):  # meta is shared with subcommand contexts
                log.error("traceback", exc_info=exc)
            message = " ".join(str(exc).split())
            raise click.ClickException(message) from None


@click.group(cls=GeounetGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="geounet")
def cli() -> None:
    """Segment GeoTIFF scenes with U-Nets into building footprints and land-use polygons."""


def _register() -> None:
    from geounet.cli.evaluate import evaluate_cmd
    from geounet.cli.models import models_cmd
    from geounet.cli.predict import predict_cmd
    from geounet.cli.train import train_cmd

    for cmd in (predict_cmd, train_cmd, evaluate_cmd, models_cmd):
        cli.add_command(cmd)


_register()


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="geounet")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
