"""The ``geounet`` command line (``geounet.cli.main``) and the ``rio geounet`` plugin.

Nothing heavy is imported here: ``rio`` imports ``geounet.cli.rio`` on every start,
and that imports this package first.
"""


def main() -> None:
    """Console-script entry point (``geounet``)."""
    from geounet.cli.main import main as _main

    _main()


def __getattr__(name: str):
    if name == "cli":
        from geounet.cli.main import cli

        return cli
    raise AttributeError(f"module 'geounet.cli' has no attribute {name!r}")
