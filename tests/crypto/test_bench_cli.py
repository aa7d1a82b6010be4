"""``mira bench sign`` through click's CliRunner (small committees: no timing asserted)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from oracle.cli.main import cli


def test_bench_sign_json_is_one_object() -> None:
    result = CliRunner().invoke(
        cli, ["bench", "sign", "--json", "--case", "2,3", "--case", "3,4", "--rounds", "2"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # stdout is exactly the JSON; progress is on stderr
    assert result.stderr.splitlines() == [
        "mira bench sign: committees: DKG, then signing rounds (2 steps)",
        result.stderr.splitlines()[-1],
    ]
    assert result.stderr.splitlines()[-1].startswith("mira bench sign: done in ")
    assert [(c["t"], c["n"]) for c in report["cases"]] == [(2, 3), (3, 4)]
    for case in report["cases"]:
        assert case["sign_rounds"] == 2
        assert case["sign_cpu_ms_median"] >= case["sign_cpu_ms_min"] > 0
        assert case["dkg_wall_s"] > 0
    assert report["bars"] == {} and report["pass"] is None


def test_bench_sign_rejects_bad_case() -> None:
    result = CliRunner().invoke(cli, ["bench", "sign", "--case", "5,3"])
    assert result.exit_code != 0
    assert "1 ≤ T ≤ N" in result.output
