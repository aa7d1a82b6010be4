"""Entry point of the ``mira`` console script."""

from __future__ import annotations

import errno
import os
import platform
import sys
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as installed_version
from typing import Any, NoReturn

import click
import requests

from oracle import __version__, artifacts
from oracle.cli.bench import bench
from oracle.cli.committee import committee
from oracle.cli.db import db
from oracle.cli.deploy import deploy
from oracle.cli.devnet import devnet
from oracle.cli.evaluate import eval_command
from oracle.cli.feed import feed
from oracle.cli.keys import keys
from oracle.cli.model import model
from oracle.cli.model_status import status as model_status
from oracle.cli.node import node
from oracle.errors import MiraError

DEBUG_ENV = "MIRA_DEBUG"


class MiraGroup(click.Group):
    """The error contract of every ``mira`` command: a usage error (a missing, malformed or
    contradictory argument) is one line naming the option and exit code 2; a failure (the
    chain unreachable, a key that does not open, any MiraError) is one line and exit code 1;
    never a traceback, unless ``MIRA_DEBUG=1`` asks for one."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MiraError as exc:
            raise click.ClickException(str(exc)) from exc

    def main(
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:  # a bare group: its help
            _fail(exc.format_message(), exc.exit_code)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else "mira"
            _fail(f"{where}: {exc.format_message()} (see '{where} --help')", exc.exit_code)
        except click.ClickException as exc:
            _fail(f"Error: {exc.format_message()}", exc.exit_code)
        except click.Abort:
            _fail("Aborted.", 1)
        except OSError as exc:
            if exc.errno == errno.EPIPE:  # the reader of our output went away
                sys.exit(1)
            _unexpected(exc)
        except Exception as exc:
            _unexpected(exc)
        sys.exit(rv if isinstance(rv, int) else 0)


def _fail(message: str, code: int) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(code)


def _unexpected(exc: Exception) -> NoReturn:
    if os.environ.get(DEBUG_ENV) == "1":
        raise exc
    if isinstance(exc, requests.exceptions.ConnectionError):
        url = str(exc.request.url) if exc.request is not None else "the JSON-RPC endpoint"
        _fail(f"Error: cannot reach {url}: is the node/RPC running and the URL right?", 1)
    text = " ".join(str(exc).split()) or "(no message)"
    _fail(f"Error: {type(exc).__name__}: {text} (set {DEBUG_ENV}=1 for the traceback)", 1)


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
model.add_command(model_status)  # kept apart from oracle.cli.model: it reads members too
cli.add_command(committee)
cli.add_command(eval_command)
cli.add_command(feed)


def main() -> None:
    cli()
