"""Tampering with what a node stored, entry by entry, for tests of what a restart or a
reader then notices. Observations and outputs are stored in runs (oracle.storage.runs):
the run holding an entry is read, changed and written back with the same codec."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, text

from oracle.storage.runs import output_runs, read_outputs


def change_output(engine: Engine, feed_id: str, seq: int, **changes: Any) -> None:
    """Set fields of the stored output ``seq`` of ``feed_id`` (e.g. ``value=1``)."""
    with engine.begin() as conn:
        found = conn.execute(
            text(
                "SELECT id, body, commitments FROM output_runs WHERE feed_id = :f "
                "AND first_seq <= :s AND last_seq >= :s"
            ),
            {"f": feed_id, "s": seq},
        ).first()
        assert found is not None, f"no stored output {seq} of {feed_id}"
        run_id, body, commitments = found
        entries = read_outputs(feed_id, body, commitments)
        assert seq in [e.seq for e in entries], f"no stored output {seq} of {feed_id}"
        (run,) = output_runs([e._replace(**changes) if e.seq == seq else e for e in entries])
        conn.execute(
            text("UPDATE output_runs SET body = :b, commitments = :c WHERE id = :i"),
            {"b": run.body, "c": run.commitments, "i": run_id},
        )


def stored_entries(engine: Engine) -> int:
    """Observations and outputs stored, all feeds together."""
    with engine.connect() as conn:
        return sum(
            int(conn.execute(text(f"SELECT coalesce(sum(size), 0) FROM {t}")).scalar_one())
            for t in ("observation_runs", "output_runs")
        )
