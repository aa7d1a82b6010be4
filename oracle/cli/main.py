"""Entry point of the ``mira`` console script."""

from __future__ import annotations

import click

from oracle import __version__
from oracle.cli.db import db
from oracle.cli.devnet import devnet
from oracle.cli.node import node
from oracle.errors import MiraError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mira")
def cli() -> None:
    """Mira: an AI oracle network for EVM L2s."""


cli.add_command(devnet)
cli.add_command(db)
cli.add_command(node)


def main() -> None:
    try:
        cli(standalone_mode=True)
    except MiraError as exc:  # an expected failure: one clear line, no traceback
        raise click.ClickException(str(exc)) from exc
