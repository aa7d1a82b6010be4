from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect

from oracle.storage import (
    DatabaseNotMigrated,
    current_revision,
    head_revision,
    require_current,
    upgrade,
)
from oracle.storage.migrate import downgrade, migrations_dir
from oracle.storage.schema import Base
from tests.fixtures.db import Backend

TABLES = {
    "observation_runs",
    "rejected_observations",
    "model_checkpoints",
    "output_runs",
    "rounds",
    "reports",
    "transmissions",
    "used_nonces",
    "tx_attempts",
    "tx_nonces",
    "chain_blocks",
    "chain_logs",
}


def test_unmigrated_database_is_refused_with_the_command_to_run(empty_engine: Engine) -> None:
    with pytest.raises(DatabaseNotMigrated) as info:
        require_current(empty_engine)
    assert info.value.current is None
    assert info.value.head == head_revision()
    assert "mira db upgrade" in str(info.value)


def test_upgrade_creates_every_table_and_is_idempotent(empty_engine: Engine) -> None:
    assert upgrade(empty_engine) == head_revision()
    assert upgrade(empty_engine) == head_revision()
    assert set(inspect(empty_engine).get_table_names()) >= TABLES
    require_current(empty_engine)


def test_database_behind_head_is_refused(empty_engine: Engine) -> None:
    upgrade(empty_engine)
    downgrade(empty_engine, "base")
    assert current_revision(empty_engine) is None
    assert not TABLES & set(inspect(empty_engine).get_table_names())
    with pytest.raises(DatabaseNotMigrated):
        require_current(empty_engine)


def test_migrations_match_the_models(engine: Engine) -> None:
    """The migrations create exactly what ``Base.metadata`` describes."""
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_mira_db_upgrade_runs_from_any_directory(backend: Backend, tmp_path: Path) -> None:
    """The CLI finds the migrations without relying on the current directory."""
    env = dict(os.environ)
    args = [
        str(Path(sys.executable).parent / "mira"),
        "db",
        "upgrade",
        "--database-url",
        backend.url,
    ]
    if backend.schema:
        args += ["--schema", backend.schema]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run(args, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert head_revision() in done.stdout
    # progress on stderr (not a terminal here): one line for the phase, one for the total
    steps = len(list((migrations_dir() / "versions").glob("*.py")))
    assert done.stderr.splitlines()[0] == f"mira db upgrade: applying migrations ({steps} steps)"
    assert done.stderr.splitlines()[-1].startswith("mira db upgrade: done in ")
    require_current(backend.engine())


def test_rows_of_the_removed_direct_transmitter_become_manager_states(
    empty_engine: Engine,
) -> None:
    """A node that sent reports with the removed "direct" transmitter left rows without a
    call and with its own status words; the manager reads every status of its sender as
    a State, so 0004 turns them into terminal manager states, keeping each row."""
    from sqlalchemy import text

    from oracle.transmission.states import State
    from oracle.transmission.store import TransmissionStore

    sender = "0x" + "11" * 20
    upgrade(empty_engine, "0003")
    with empty_engine.begin() as conn:
        for i, status in enumerate(("landed", "claimed", "unknown", "failed")):
            conn.execute(
                text(
                    "INSERT INTO transmissions (chain_id, report_hash, sender, status, "
                    "tx_hash, created_at_ms, updated_at_ms) VALUES (1, :h, :s, :st, :tx, 0, 0)"
                ),
                {"h": bytes([i]) * 32, "s": sender, "st": status, "tx": bytes([i + 9]) * 32},
            )
    upgrade(empty_engine)
    assert TransmissionStore(empty_engine, 1, sender).counts() == {
        State.CONFIRMED: 1,
        State.FAILED: 3,
    }
    with empty_engine.connect() as conn:
        rows = conn.execute(
            text("SELECT status, error, tx_hash FROM transmissions ORDER BY id")
        ).all()
    assert [(r[0], r[1]) for r in rows] == [
        ("confirmed", None),
        ("failed", "direct transmitter (removed): claimed"),
        ("failed", "direct transmitter (removed): unknown"),
        ("failed", None),
    ]
    assert [bytes(r[2]) for r in rows] == [bytes([i + 9]) * 32 for i in range(4)]  # kept


def test_0006_keeps_every_observation_and_the_exactly_once_rule(empty_engine: Engine) -> None:
    """0006 turns the (feed_id, dedup_key) unique constraint into a partial unique index:
    the rows stored before it are kept as they were, a repeated key of a feed is still
    refused, rows without a key are still allowed side by side (SQL never compared NULLs)
    and get no index entry, and the downgrade restores the constraint."""
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    def insert(conn: Any, feed: str, seq: int, key: str | None) -> None:
        conn.execute(
            text(
                "INSERT INTO observations (feed_id, seq, source, observed_at_ms, dedup_key, "
                "record) VALUES (:f, :s, 'src', :s, :k, '{}')"
            ),
            {"f": feed, "s": seq, "k": key},
        )

    upgrade(empty_engine, "0005")
    with empty_engine.begin() as conn:
        insert(conn, "a", 1, "row:0")
        insert(conn, "a", 2, None)
        insert(conn, "a", 3, None)
        insert(conn, "b", 1, "row:0")  # the same key, another feed
    upgrade(empty_engine, "0006")
    select_all = text("SELECT feed_id, seq, dedup_key FROM observations ORDER BY id")
    with empty_engine.connect() as conn:
        before = conn.execute(select_all).all()
    assert [tuple(r) for r in before] == [
        ("a", 1, "row:0"), ("a", 2, None), ("a", 3, None), ("b", 1, "row:0"),
    ]  # fmt: skip
    index = {i["name"]: i for i in inspect(empty_engine).get_indexes("observations")}
    partial = index["uq_observations_feed_id_dedup_key"]
    assert partial["unique"]
    where = partial["dialect_options"][f"{empty_engine.dialect.name}_where"]
    assert "dedup_key IS NOT NULL" in str(where)
    with empty_engine.begin() as conn:
        insert(conn, "a", 4, None)  # a third row without a key
    with pytest.raises(IntegrityError), empty_engine.begin() as conn:
        insert(conn, "a", 5, "row:0")  # the feed's key again
    with empty_engine.connect() as conn:
        assert len(conn.execute(select_all).all()) == 5  # the refused row left nothing
    downgrade(empty_engine, "0005")
    with pytest.raises(IntegrityError), empty_engine.begin() as conn:
        insert(conn, "b", 2, "row:0")
    with empty_engine.connect() as conn:
        assert len(conn.execute(select_all).all()) == 5


def test_0007_moves_every_row_into_runs_and_the_downgrade_moves_them_back(
    empty_engine: Engine,
) -> None:
    """Rows of the per-entry tables (interleaved feeds, as a polling node writes them; a
    long stretch of one feed; an int128 value; a record in the old json.dumps spelling)
    read back the same through the store after 0007, in runs whose ids keep the write
    order; the downgrade gives back the same rows, in the same order."""
    from sqlalchemy import text

    from oracle.storage import Store, encode_record
    from oracle.storage.runs import RUN_MAX

    upgrade(empty_engine, "0006")
    obs_rows: list[tuple[Any, ...]] = []
    out_rows: list[tuple[Any, ...]] = []
    seq = {"a": 0, "b": 0, "c": 0}

    def add(feed: str) -> None:
        seq[feed] += 1
        s = seq[feed]
        record = '{"x": 1e-05, "y": %d}' % s  # noqa: UP031 (json.dumps' spelling)
        obs_rows.append(
            (feed, s, "src", 1000 + len(obs_rows), f"row:{s}" if s % 2 else None, record)
        )
        value = str(2**127 - s) if feed == "c" else str(s * 10)
        out_rows.append(
            (feed, s, 1000 + len(out_rows), value, s / 3, bytes([s % 256]) * 32, s % 5 == 0)
        )

    for _ in range(7):  # interleaved: runs of one
        add("a")
        add("b")
    for _ in range(RUN_MAX + 5):  # one stretch of c: two runs
        add("c")
    add("a")
    with empty_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO observations (feed_id, seq, source, observed_at_ms, dedup_key, "
                "record) VALUES (:f, :s, :src, :t, :k, :r)"
            ),
            [dict(zip(("f", "s", "src", "t", "k", "r"), r, strict=True)) for r in obs_rows],
        )
        conn.execute(
            text(
                "INSERT INTO outputs (feed_id, seq, observed_at_ms, value, raw_value, "
                "commitment, publish) VALUES (:f, :s, :t, :v, :r, :c, :p)"
            ),
            [dict(zip(("f", "s", "t", "v", "r", "c", "p"), r, strict=True)) for r in out_rows],
        )
    upgrade(empty_engine, "0007")
    store = Store(empty_engine)
    for feed in seq:
        got = [(*o[:5], list(o.record.items())) for o in store.observations_after(feed, 0)]
        assert got == [(*r[:5], list(json.loads(r[5]).items())) for r in obs_rows if r[0] == feed]
        outs = [(*o[:3], str(o[3]), *o[4:]) for o in store.outputs(feed, limit=10**6)]
        assert outs == [r for r in out_rows if r[0] == feed]
    with empty_engine.connect() as conn:
        runs = conn.execute(text("SELECT feed_id, size FROM observation_runs ORDER BY id")).all()
    assert [tuple(r) for r in runs] == [("a", 1), ("b", 1)] * 7 + [
        ("c", RUN_MAX),
        ("c", 5),
        ("a", 1),
    ]
    assert set(inspect(empty_engine).get_table_names()).isdisjoint({"observations", "outputs"})

    downgrade(empty_engine, "0006")
    with empty_engine.connect() as conn:
        back_obs = conn.execute(
            text(
                "SELECT feed_id, seq, source, observed_at_ms, dedup_key, record "
                "FROM observations ORDER BY id"
            )
        ).all()
        back_out = conn.execute(
            text(
                "SELECT feed_id, seq, observed_at_ms, value, raw_value, commitment, publish "
                "FROM outputs ORDER BY id"
            )
        ).all()
    # the same rows; in id order feed by feed within each run, as 0007 grouped them
    # each record's text as the records' codec writes it: the same values
    assert sorted((*r[:5], json.loads(r[5])["y"]) for r in back_obs) == sorted(
        (*r[:5], json.loads(r[5])["y"]) for r in obs_rows
    )
    assert {encode_record(json.loads(r[5])) for r in obs_rows} == {r[5] for r in back_obs}
    assert sorted((*r[:5], bytes(r[5]), bool(r[6])) for r in back_out) == sorted(out_rows)
    assert not {"observation_runs", "output_runs"} & set(inspect(empty_engine).get_table_names())


def test_0007_runs_again_after_an_interrupted_run(empty_engine: Engine) -> None:
    """A `mira db upgrade` killed while 0007 moved the rows leaves its new tables behind
    (SQLite's driver commits each CREATE on its own) with the revision still 0006: the
    next upgrade redoes the move from the old tables, every row once."""
    from sqlalchemy import text

    from oracle.storage import ObservationRow, Store
    from oracle.storage.runs import observation_runs
    from oracle.storage.schema import ObservationRun, OutputRun

    upgrade(empty_engine, "0006")
    with empty_engine.begin() as conn:
        for s in (1, 2, 3):
            conn.execute(
                text(
                    "INSERT INTO observations (feed_id, seq, source, observed_at_ms, "
                    "dedup_key, record) VALUES ('f', :s, 'src', :s, NULL, '{\"y\": 1.5}')"
                ),
                {"s": s},
            )
        # what an interrupted 0007 leaves: its tables, one of them partly filled
        ObservationRun.__table__.create(conn)
        OutputRun.__table__.create(conn)
        (run,) = observation_runs([ObservationRow("f", 1, "src", 1, None, {"y": 1.5})])
        conn.execute(ObservationRun.__table__.insert(), [run._asdict()])
    assert current_revision(empty_engine) == "0006"
    upgrade(empty_engine)
    assert current_revision(empty_engine) == head_revision()
    assert [o.seq for o in Store(empty_engine).observations_after("f", 0)] == [1, 2, 3]


def _old_rows(engine: Engine, n: int) -> None:
    """``n`` observations of one feed in 0006's table (what 0007 moves)."""
    from sqlalchemy import text

    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO observations (feed_id, seq, source, observed_at_ms, "
                "dedup_key, record) VALUES ('f', :s, 'src', :s, NULL, '{\"y\": 1.5}')"
            ),
            [{"s": s} for s in range(1, n + 1)],
        )


def test_a_migration_step_that_fails_leaves_nothing_of_itself(
    empty_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step fails after it has created its tables: the database is left exactly at the
    step before, without them (on SQLite too, whose driver used to commit each CREATE
    on its own), and the next upgrade applies the step from the start."""
    import oracle.storage.runs

    upgrade(empty_engine, "0006")
    _old_rows(empty_engine, 3)

    def fail(rows: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(oracle.storage.runs, "observation_runs", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        upgrade(empty_engine)
    assert current_revision(empty_engine) == "0006"
    tables = set(inspect(empty_engine).get_table_names())
    assert "observation_runs" not in tables and "output_runs" not in tables
    assert {"observations", "outputs"} <= tables
    monkeypatch.undo()
    upgrade(empty_engine)
    from oracle.storage import Store

    assert [o.seq for o in Store(empty_engine).observations_after("f", 0)] == [1, 2, 3]


def test_an_upgrade_killed_midway_leaves_the_database_at_the_step_before(
    backend: Backend, tmp_path: Path
) -> None:
    """``mira db upgrade`` killed with SIGKILL while 0007 moves the rows (its tables made,
    some rows written): nothing of 0007 is there afterwards, and an upgrade then runs
    it whole."""
    engine = backend.engine()
    upgrade(engine, "0006")
    _old_rows(engine, 300)
    schema = "" if backend.schema is None else ", schema=sys.argv[2]"
    script = tmp_path / "killed.py"
    script.write_text(
        "import os, signal, sys\n"
        "import oracle.storage.runs as runs\n"
        "from oracle.storage import make_engine, upgrade\n"
        "real = runs.observation_runs\n"
        "def killed(rows):\n"
        "    real(rows)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "runs.observation_runs = killed\n"
        f"upgrade(make_engine(sys.argv[1]{schema}))\n"
    )
    args = [sys.executable, str(script), backend.url]
    if backend.schema is not None:
        args.append(backend.schema)
    done = subprocess.run(args, capture_output=True, timeout=120, check=False)
    assert done.returncode == -9, done.stderr.decode()[-2000:]
    assert current_revision(engine) == "0006"
    assert "observation_runs" not in set(inspect(engine).get_table_names())
    upgrade(engine)
    from oracle.storage import Store

    assert [o.seq for o in Store(engine).observations_after("f", 0)] == list(range(1, 301))


def test_a_new_sqlite_database_has_16_kib_pages_and_an_older_one_keeps_its_own(
    tmp_path: Path,
) -> None:
    """New SQLite files get SQLITE_PAGE_SIZE (fewer WAL frames a commit); a file made
    with SQLite's default 4 KiB pages (before) keeps them, and is written and read."""
    import sqlite3

    from sqlalchemy import text

    from oracle.storage import ObservationRow, Store, make_engine
    from oracle.storage.db import SQLITE_PAGE_SIZE

    def page_size(engine: Engine) -> int:
        with engine.connect() as conn:
            return int(conn.execute(text("PRAGMA page_size")).scalar_one())

    new = make_engine(f"sqlite:///{tmp_path / 'new.sqlite'}")
    upgrade(new)
    assert page_size(new) == SQLITE_PAGE_SIZE == 16384
    new.dispose()
    older = tmp_path / "older.sqlite"
    with sqlite3.connect(older) as raw:  # as SQLite's default made it
        raw.execute("PRAGMA journal_mode=WAL")
        raw.execute("CREATE TABLE before (x)")
    engine = make_engine(f"sqlite:///{older}")
    upgrade(engine)
    assert page_size(engine) == 4096
    store = Store(engine)
    rows = [ObservationRow("F", i, "s", 1000 + i, f"row:{i}", {"x": i / 3}) for i in range(1, 301)]
    store.write_batch(rows)
    assert store.count_observations("F") == 300
    engine.dispose()
    reopened = make_engine(f"sqlite:///{older}")
    assert page_size(reopened) == 4096 and Store(reopened).count_observations("F") == 300
