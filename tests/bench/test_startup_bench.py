"""``mira bench startup`` runs end to end on a few feeds and reports every phase of both
starts (the figures are the benchmark's to report, not this test's to assert)."""

from __future__ import annotations

import json

import structlog
from click.testing import CliRunner

from oracle.cli.main import cli

PHASES = {
    "load_specs_s",
    "build_runners_s",
    "storage_check_s",
    "restore_s",
    "total_s",
    "restore_queries",
}


def test_startup_bench_reports_each_phase_of_a_fresh_start_and_a_restart() -> None:
    logging_before = structlog.get_config()
    result = CliRunner().invoke(
        cli, ["bench", "startup", "--feeds", "12", "--checkpointed", "2", "--after", "1", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["benchmark"] == "startup" and report["feeds"] == 12
    assert report["backend"] == "sqlite"
    assert report["checkpointed_observations_per_feed"] == 2
    assert report["observations_after_checkpoint_per_feed"] == 1
    for phase in ("fresh", "restart"):
        assert set(report[phase]) == PHASES
        assert all(report[phase][k] >= 0 for k in PHASES)
        # a few statements for all twelve feeds, not several a feed
        assert 0 < report[phase]["restore_queries"] < 12
    assert structlog.get_config() == logging_before  # the node's logging was put back
