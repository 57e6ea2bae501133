"""``rio geounet``: geounet as a rasterio CLI plugin (entry-point group ``rasterio.rio_plugins``).

rasterio imports every registered ``rio`` plugin each time ``rio`` starts, so this
module imports only click; geounet's commands are imported when ``rio geounet``
actually runs one of them. The subcommands and options are those of ``geounet``.
"""

import click


class _LazyGroup(click.Group):
    def list_commands(self, ctx):
        from geounet.cli.main import COMMANDS

        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        from geounet.cli.main import GeounetGroup

        # the same lookup, without making this module import GeounetGroup's module
        return GeounetGroup.get_command(self, ctx, name)  # type: ignore[arg-type]

    def invoke(self, ctx):
        from geounet.cli.main import invoke_with_clean_errors

        return invoke_with_clean_errors(super().invoke, ctx)


@click.group("geounet", cls=_LazyGroup)
def geounet():
    """Segment scenes into building footprints / land-use polygons (geounet)."""
