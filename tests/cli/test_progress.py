"""Progress of long work (oracle.progress): plain lines per phase off a terminal, rich bars
on one, and never a byte on stdout."""

from __future__ import annotations

import io

import pytest

from oracle.progress import stderr_progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_each_phase_is_one_line_and_the_total_time_ends_it() -> None:
    out = io.StringIO()
    with stderr_progress("mira thing", out) as progress:
        progress("loading", 0, 3)
        progress("loading", 1, 3)
        progress("loading", 3, 3)
        progress("waiting for the chain")
        progress("waiting for the chain")
    lines = out.getvalue().splitlines()
    assert lines[:2] == ["mira thing: loading (3 steps)", "mira thing: waiting for the chain"]
    assert len(lines) == 3 and lines[2].startswith("mira thing: done in ")


def test_a_failure_does_not_claim_the_work_was_done() -> None:
    out = io.StringIO()
    with pytest.raises(RuntimeError), stderr_progress("mira thing", out) as progress:
        progress("loading", 0, 3)
        raise RuntimeError("boom")
    assert "done in" not in out.getvalue()


def test_on_a_terminal_a_bar_shows_done_of_total(capsys: pytest.CaptureFixture[str]) -> None:
    out = Terminal()
    with stderr_progress("mira thing", out) as progress:
        progress("loading", 1, 3)
        progress("signing", 2, 5)
    text = out.getvalue()
    assert "loading" in text and "3/3" in text  # a finished phase shows complete
    assert "signing" in text and "5/5" in text
    assert capsys.readouterr().out == ""
