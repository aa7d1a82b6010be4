"""Entry point of the ``mira`` console script."""

from __future__ import annotations

from typing import Any

import click

from oracle import __version__
from oracle.cli.bench import bench
from oracle.cli.committee import committee
from oracle.cli.db import db
from oracle.cli.deploy import deploy
from oracle.cli.devnet import devnet
from oracle.cli.feed import feed
from oracle.cli.keys import keys
from oracle.cli.model import model
from oracle.cli.node import node
from oracle.errors import MiraError


class MiraGroup(click.Group):
    """Turns an expected failure (any MiraError) into one clear line and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MiraError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=MiraGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mira")
def cli() -> None:
    """Mira: an AI oracle network for EVM L2s."""


cli.add_command(devnet)
cli.add_command(bench)
cli.add_command(keys)
cli.add_command(db)
cli.add_command(deploy)
cli.add_command(node)
cli.add_command(model)
cli.add_command(committee)
cli.add_command(feed)


def main() -> None:
    cli()
