"""The devnet's live view shows each feed's skill against its naive baseline."""

from __future__ import annotations

from rich.console import Console

from oracle.config.feeds import decimal_text
from oracle.devnet.view import FeedRow, NodeRow, compact, render


def test_the_live_view_shows_each_feeds_skill() -> None:
    console = Console(width=160, record=True)
    console.print(
        render(
            [
                FeedRow("SP500/forecast-1", 1, None, 3.0, "0.5", 0.31, 0.24),
                FeedRow("WATERFLOW/anomaly", None, None, None, None, None, None),
            ],
            [NodeRow("node0", "http://127.0.0.1:1", True, "active", 3)],
        )
    )
    text = console.export_text()
    assert "skill vs naive" in text
    line = next(row for row in text.splitlines() if "SP500/forecast-1" in row)
    assert "+24%" in line


def test_the_live_view_names_the_dashboard() -> None:
    console = Console(width=160, record=True)
    console.print(render([], [], dashboard="http://127.0.0.1:7708/ui/"))
    assert "dashboard: http://127.0.0.1:7708/ui/" in console.export_text()


def test_values_are_written_out_with_their_decimals() -> None:
    """A zero 8-decimal answer reads 0.00000000 (Decimal's own str gives 0E-8), a whole
    one keeps its decimals, a negative one its sign."""
    assert decimal_text(0, 8) == "0.00000000"
    assert decimal_text(100_000, 2) == "1000.00"
    assert decimal_text(-5, 3) == "-0.005"
    assert decimal_text(123456789, 0) == "123456789"


def test_the_compact_line_says_which_feeds_have_no_round_yet() -> None:
    line = compact(
        [
            FeedRow("ETH/USD", 18446744073709551618, decimal_text(0, 8), 1.0, None, None),
            FeedRow("SP500/forecast-1", None, None, None, None, None),
        ],
        [NodeRow("node0", "http://127.0.0.1:1", True, "active", 3)],
    )
    assert "ETH/USD r18446744073709551618=0.00000000;" in line
    assert "SP500/forecast-1 no round yet;" in line
    assert line.endswith("nodes 1/1 ok")
