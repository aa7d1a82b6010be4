"""`mira bench pull`: its usage errors (the run itself is a benchmark, four node processes
for a minute or more: run it by hand, `mira bench pull --json`)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from oracle.cli.main import cli


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--feeds", "ten"], "expected counts like 100,400"),
        (["--feeds", "100,"], "expected counts like 100,400"),
        (["--feeds", "0"], "each count from 1 to 23040"),
        (["--feeds", "23041"], "each count from 1 to 23040"),
        (["--duration", "5"], "--duration 10..3600 s"),
        (["--round-period", "0.01"], "--round-period 0.1..60 s"),
        (["--poll", "0.1"], "--poll 0.2..60 s"),
    ],
)
def test_bad_arguments_are_usage_errors(args: list[str], expected: str) -> None:
    result = CliRunner().invoke(cli, ["bench", "pull", *args])
    assert result.exit_code == 2 and expected in result.output
