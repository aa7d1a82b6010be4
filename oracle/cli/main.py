"""Entry point of the ``mira`` console script."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as installed_version
from typing import Any

import click

from oracle import __version__, artifacts
from oracle.cli.bench import bench
from oracle.cli.committee import committee
from oracle.cli.db import db
from oracle.cli.deploy import deploy
from oracle.cli.devnet import devnet
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


def version_report() -> str:
    """What a bug report needs: this package, the contract build it runs against, and the
    pinned libraries whose exact versions model replay depends on."""

    def pinned(name: str) -> str:
        try:
            return installed_version(name)
        except PackageNotFoundError:
            return "not installed"

    build = artifacts.build_hash() or f"not built (no artifacts under {artifacts.artifacts_dir()})"
    return "\n".join(
        [
            f"mira {__version__}",
            f"contracts {build}",
            f"river {pinned('river')}",
            f"numpy {pinned('numpy')}",
            f"python {platform.python_version()}",
        ]
    )


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(version_report())
        ctx.exit()


@click.group(cls=MiraGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version, the contract build and the pinned river/numpy, then exit.",
)
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


def main() -> None:
    cli()
