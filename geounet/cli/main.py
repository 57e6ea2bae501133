"""The ``geounet`` command line: a thin layer over the Python API.

One module per subcommand (as ``rasterio/rio/``), each imported only when it runs
(``--help`` imports none of torch, rasterio or geopandas). Every
:class:`~geounet.errors.GeounetError` becomes a one-line ``Error: ...`` message
and exit status 1; ``-v`` adds the traceback.
"""

from __future__ import annotations

import logging

import click

from geounet import __version__
from geounet.errors import GeounetError

log = logging.getLogger(__name__)


COMMANDS = {
    "predict": ("geounet.cli.predict", "predict_cmd"),
    "train": ("geounet.cli.train", "train_cmd"),
    "evaluate": ("geounet.cli.evaluate", "evaluate_cmd"),
    "models": ("geounet.cli.models", "models_cmd"),
    "export": ("geounet.cli.export", "export_cmd"),
    "quantize": ("geounet.cli.quantize", "quantize_cmd"),
    "import": ("geounet.cli.import_model", "import_cmd"),
    "measure-context": ("geounet.cli.context", "context_cmd"),
}


class GeounetGroup(click.Group):
    """Click group with lazily imported subcommands (:data:`COMMANDS`).

    It turns geounet errors into one-line messages.
    """

    def list_commands(self, ctx):  # noqa: D102
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx, name):  # noqa: D102
        if name in self.commands:
            return self.commands[name]
        if name not in COMMANDS:
            return None
        from importlib import import_module

        module, attr = COMMANDS[name]
        return getattr(import_module(module), attr)

    def invoke(self, ctx: click.Context):  # noqa: D102
        return invoke_with_clean_errors(super().invoke, ctx)


def invoke_with_clean_errors(invoke, ctx: click.Context):
    """Call ``invoke(ctx)``; a :class:`GeounetError` becomes a one-line ``click`` error.

    With ``-v`` the traceback is logged too.
    """
    try:
        return invoke(ctx)
    except GeounetError as exc:
        if ctx.meta.get("geounet.verbose", 0):  # meta is shared with subcommand contexts
            log.error("traceback", exc_info=exc)
        raise click.ClickException(" ".join(str(exc).split())) from None


@click.group(cls=GeounetGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="geounet")
def cli() -> None:
    """Segment GeoTIFF scenes with U-Nets into building footprints and land-use polygons."""


def _terminate(signum, frame):
    """Turn SIGTERM into SystemExit so cleanups run and no temporary output is left."""
    raise SystemExit(128 + signum)


def main() -> None:
    """Console-script entry point."""
    import signal

    signal.signal(signal.SIGTERM, _terminate)
    cli(prog_name="geounet")


if __name__ == "__main__":  # pragma: no cover
    main()
