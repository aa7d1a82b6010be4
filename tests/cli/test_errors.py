"""The error contract of every ``mira`` command, tried as a user gets it wrong.

Usage errors (missing, malformed or contradictory arguments) are one line on stderr naming
the option and what to change, exit code 2; failures (a chain or database that does not
answer, a key that is not there, a spec that does not validate) are one line, exit code 1;
never a traceback, and nothing on stdout. The walk over the command tree covers every
subcommand, including ones added later.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from oracle.cli.main import cli
from oracle.cli.options import AddressType, RpcUrlType


def leaves(
    group: click.Group, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from leaves(command, (*path, name))
        else:
            yield (*path, name), command


COMMANDS = list(leaves(cli))
IDS = [" ".join(path) for path, _ in COMMANDS]


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), prog_name="mira")


def one_line_error(result: Result, code: int) -> str:
    assert result.exit_code == code, (result.exit_code, result.output)
    assert "Traceback" not in result.output, result.output
    assert result.stdout == "", result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_an_unknown_option_is_one_usage_line(path: tuple[str, ...], command: click.Command) -> None:
    line = one_line_error(run(*path, "--no-such-option"), 2)
    where = "mira " + " ".join(path)
    assert line.startswith(f"{where}: No such option") and f"'{where} --help'" in line


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_a_missing_required_argument_is_named(
    path: tuple[str, ...], command: click.Command
) -> None:
    required = [p for p in command.params if p.required and p.envvar is None]
    if not required:
        pytest.skip("nothing required")
    line = one_line_error(run(*path), 2)
    assert "Missing" in line and any(
        (p.opts[0] if isinstance(p, click.Option) else p.human_readable_name.upper()) in line
        for p in required
    ), line


def malformed(param: click.Parameter) -> str | None:
    """A value this parameter's type must refuse, or None if its type takes any text."""
    kind = param.type
    if isinstance(kind, (click.types.IntParamType, click.types.FloatParamType)):
        return "not-a-number"
    if isinstance(kind, AddressType):
        return "0x12"
    if isinstance(kind, RpcUrlType):
        return "localhost:8545"
    if isinstance(kind, click.Choice):
        return "no-such-choice"
    if isinstance(kind, click.Path) and kind.exists:
        return "/nonexistent/mira-test"
    return None


MALFORMED = [
    (path, param, value)
    for path, command in COMMANDS
    for param in command.params
    if isinstance(param, click.Option) and not param.is_flag
    and (value := malformed(param)) is not None
]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "param", "value"),
    MALFORMED,
    ids=[f"{' '.join(p)} {o.opts[0]}" for p, o, _ in MALFORMED],
)
def test_a_malformed_value_is_refused_naming_the_option(
    path: tuple[str, ...], param: click.Option, value: str
) -> None:
    line = one_line_error(run(*path, param.opts[0], value), 2)
    assert f"Invalid value for '{param.opts[0]}'" in line or param.opts[0] in line, line


def test_every_command_that_takes_chain_coordinates_checks_them() -> None:
    for path, command in COMMANDS:
        for param in command.params:
            if param.name in ("rpc_url", "oracle"):
                assert isinstance(param.type, (RpcUrlType, AddressType)), (path, param.name)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("bench", "sign", "--case", "5,3"), "1 ≤ T ≤ N"),
        (("db", "upgrade", "--database-url", "sqlite:///x.sqlite", "--schema", "s"), "schema"),
        (("db", "current", "--database-url", "mysql://localhost/x"), "use sqlite or postgresql"),
        (("devnet", "up", "--nodes", "0"), "--nodes"),
        (
            (
                "committee",
                "status",
                "--rpc-url",
                "http://127.0.0.1:9",
                "--oracle",
                "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed".lower().replace("a", "A", 1),
            ),
            "checksum",
        ),
    ],
)
def test_contradictory_or_out_of_range_arguments_are_usage_errors(
    args: tuple[str, ...], named: str
) -> None:
    assert named in one_line_error(run(*args), 2)


def test_failures_are_one_line_with_exit_code_1(tmp_path: Path) -> None:
    dead_rpc = "http://127.0.0.1:9"
    line = one_line_error(
        run("committee", "status", "--rpc-url", dead_rpc, "--oracle", "0x" + "11" * 20), 1
    )
    assert "cannot reach http://127.0.0.1:9" in line

    empty = tmp_path / "keys"
    empty.mkdir()
    assert "mira keys new" in one_line_error(run("keys", "show", "--dir", str(empty)), 1)

    config = tmp_path / "node.toml"
    config.write_text("this is not toml\n")
    line = one_line_error(run("node", "run", "--config", str(config)), 1)
    assert line.startswith("Error: invalid configuration: ") and str(config) in line

    demo = Path(__file__).resolve().parents[2] / "feeds" / "airline_holtwinters.toml"
    spec = tmp_path / "bad.toml"
    spec.write_text(demo.read_text().replace("seasonality = 12", "seasonality = -12"))
    line = one_line_error(run("model", "register", str(spec)), 1)
    assert line.startswith("Error: invalid configuration: ") and "seasonality" in line

    line = one_line_error(
        run("db", "upgrade", "--database-url", "postgresql+psycopg://mira@127.0.0.1:9/none"), 1
    )
    assert "127.0.0.1" in line
