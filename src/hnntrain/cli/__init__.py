"""The ``hnntrain`` command (typer + rich): one module per group of commands.

- :mod:`~hnntrain.cli.common`: the apps, consoles, one-line errors, the shared flags;
- :mod:`~hnntrain.cli.display`: progress and results tables;
- :mod:`~hnntrain.cli.training`: ``run``, ``compare``, ``sweep``, ``reproduce``;
- :mod:`~hnntrain.cli.tuning`: ``tune``;
- :mod:`~hnntrain.cli.stores`: ``results``, ``report``, ``plot-un``;
- :mod:`~hnntrain.cli.info`: ``schemes``, ``config``, ``device``, ``optimize``, ``data``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from hnntrain.cli import info, stores, training, tuning  # noqa: F401  (registers the commands)
from hnntrain.cli.common import app, console


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            text = version("hnntrain")
        except PackageNotFoundError:  # a source tree on PYTHONPATH, not installed
            from hnntrain import __version__ as text
        console.print(f"hnntrain {text}", highlight=False, markup=False)
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False) -> None:
    """Simulate on-chip training with pairs of non-ideal memory devices."""


def main() -> None:
    app()


__all__ = ["app", "main"]
