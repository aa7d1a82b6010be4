"""`mira bench pull`: its usage errors and its verdict (the run itself is a benchmark, four
node processes for a minute or more: run it by hand, `mira bench pull --json`)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry, generate_latest

from oracle.bench.pull import _GC, _gc_pauses, _without_root, bars, window_rounds
from oracle.cli.main import cli
from oracle.node.gc_watch import BUCKETS, GcWatch


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
        (["--retain", "59"], "--retain 60..315,360,000 s"),
        (["--retain", "ten"], "'ten' is not a valid float"),
    ],
)
def test_bad_arguments_are_usage_errors(args: list[str], expected: str) -> None:
    result = CliRunner().invoke(cli, ["bench", "pull", *args])
    assert result.exit_code == 2 and expected in result.output


def _run(outputs: float, p50: float | None) -> dict[str, object]:
    return {"attested_outputs_per_s": outputs, "observation_to_signed_root_ms_p50": p50}


@pytest.mark.parametrize(
    ("results", "passed"),
    [
        ({"10000": _run(10_000.0, 1_200.0)}, True),
        ({"10000": _run(10_000.0, 1_600.0)}, False),  # every root, but too late
        ({"10000": _run(9_999.9, 300.0)}, False),  # in time, a root missed
        ({"1000": _run(1_000.0, 300.0), "10000": _run(0.0, None)}, False),
        ({"10000": {"feeds": 10_000, "error": "nodes never ready"}}, False),
        # the verdict is on the run with the most outputs, not the fastest one
        ({"1000": _run(1_000.0, 200.0), "10000": _run(10_000.0, 1_400.0)}, True),
    ],
)
def test_the_verdict_needs_both_bars_on_the_best_run(
    results: dict[str, dict[str, object]], passed: bool
) -> None:
    assert bars(results)["pass"] is passed  # type: ignore[arg-type]


def test_the_window_is_a_whole_number_of_rounds() -> None:
    """Throughput is counted over the rounds that start in the window, each root in its
    own round: 60 s of 1 s rounds are 60 rounds, wherever the window starts."""
    assert window_rounds(1_000.0, 60.0, 1.0) == range(1_000_000, 1_060_000, 1_000)
    assert len(window_rounds(1_000.4, 60.0, 1.0)) == 60  # from the first whole round
    assert window_rounds(1_000.4, 60.0, 1.0)[0] == 1_001_000
    assert len(window_rounds(1_000.0, 60.0, 2.5)) == 24


def test_the_rounds_without_a_root_are_the_windows_rounds_no_node_signed() -> None:
    """A root signed by two leaders counts once; a root of a round outside the window
    does not hide a missed one inside it."""
    rounds = window_rounds(1_000.0, 5.0, 1.0)
    events = [{"round": 1_000_000}, {"round": 1_002_000}, {"round": 1_002_000}, {"round": 999_000}]
    assert _without_root(rounds, events) == [1_001_000, 1_003_000, 1_004_000]
    assert _without_root(rounds, [{"round": r} for r in rounds]) == []


def test_gc_pauses_are_read_off_a_nodes_metrics() -> None:
    """The bench's reading of ``mira_gc_pause_seconds`` as a node renders it (only the
    series it asks for): seconds in every pass, and the passes over 100 ms."""
    registry = CollectorRegistry()
    watch = GcWatch(registry)
    long_bucket = BUCKETS.index(0.25)
    watch._counts[0][0] = 40  # young passes, under 1 ms
    watch._counts[1][BUCKETS.index(0.1)] = 2  # exactly 100 ms: not over
    watch._counts[2][long_bucket] = 3
    watch._counts[2][-1] = 1  # over every bound
    watch._sums[:] = [0.02, 0.2, 4.5]
    text = generate_latest(registry.restricted_registry(list(_GC))).decode()
    seconds, over = _gc_pauses(text)
    assert seconds == pytest.approx(4.72) and over == 4
    assert _gc_pauses("") == (0.0, 0.0)  # a node without the metric: nothing
