"""The devnet's live view shows each feed's skill against its naive baseline."""

from __future__ import annotations

from rich.console import Console

from oracle.devnet.view import FeedRow, NodeRow, render


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
