"""`mira bench rl`: its usage errors (the run itself is a benchmark on four node processes:
run it by hand, `mira bench rl --json [--stock-steps N]`)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from oracle.cli.main import cli


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--steps", "1"], "--steps must be at least 2"),
        (["--steps-per-block", "0"], "--steps-per-block at least 1"),
        (["--stock-steps", "2"], "--stock-steps must be 0 or in [3, 1200]"),
        (["--stock-steps", "1201"], "--stock-steps must be 0 or in [3, 1200]"),
    ],
)
def test_bad_arguments_are_usage_errors(args: list[str], expected: str) -> None:
    result = CliRunner().invoke(cli, ["bench", "rl", *args])
    assert result.exit_code == 2 and expected in result.output
