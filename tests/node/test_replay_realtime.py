"""A replay source with ``realtime = true`` releases a row only once the wall clock has
reached the row's time (what the devnet uses so replayed feeds land rounds as they go);
without it the whole dataset is read as fast as the node can."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from oracle.config import load_feed_spec
from oracle.node.feeds import FeedRunner
from oracle.node.pipeline import FeedMetrics
from oracle.storage import Store
from tests.harness.faults import model_error_on_call

REPO = Path(__file__).resolve().parents[2]


def spec_file(tmp_path: Path, extra: str) -> Path:
    text = (REPO / "feeds" / "waterflow_anomaly.toml").read_text()
    text = text.replace('kind = "replay"\n', f'kind = "replay"\n{extra}', 1)
    text = text.replace("step_ms = 1000\n", "")
    path = tmp_path / "waterflow.toml"
    path.write_text(text)
    return path


def runner(path: Path, engine: Engine) -> FeedRunner:
    r = FeedRunner(load_feed_spec(path), Store(engine), FeedMetrics(CollectorRegistry()))
    r.restore()
    return r


def test_realtime_replay_releases_rows_as_the_clock_reaches_them(
    tmp_path: Path, engine: Engine
) -> None:
    start_ms = int(time.time() * 1000) - 2_500  # rows at -2.5 s, -1.5 s, -0.5 s, +0.5 s, ...
    path = spec_file(tmp_path, f"realtime = true\nstart_ms = {start_ms}\nstep_ms = 1000\n")
    r = runner(path, engine)
    assert r.spec.sources[0].realtime  # type: ignore[union-attr]
    asyncio.run(r.poll())
    assert r.last_poll_error is None
    assert r.position == 3
    time.sleep(1.1)
    asyncio.run(r.poll())
    assert r.position == 4
    assert not r.finished


def test_without_realtime_the_replay_is_read_at_once(tmp_path: Path, engine: Engine) -> None:
    start_ms = int(time.time() * 1000) + 3_600_000  # an hour ahead: irrelevant without realtime
    path = spec_file(tmp_path, f"start_ms = {start_ms}\nstep_ms = 1000\n")
    r = runner(path, engine)
    asyncio.run(r.poll())
    assert r.position == min(r.replay_batch, r.replay.total)  # type: ignore[union-attr]


def test_a_model_error_leaves_the_replay_at_the_row_that_caused_it(
    tmp_path: Path, engine: Engine
) -> None:
    """A poll hands its batch to the pipeline at once: the position still moves past each
    row consumed or refused, and stops at the row whose model step raised."""
    path = spec_file(tmp_path, f"start_ms = {int(time.time() * 1000)}\nstep_ms = 1000\n")
    r = runner(path, engine)
    model_error_on_call(r.pipeline.model, 5, "the model produced nan")
    asyncio.run(r.poll())
    assert r.last_poll_error == "ModelError: the model produced nan"
    assert r.position == 4
    asyncio.run(r.poll())  # the same row again, then the rest of a batch
    assert r.last_poll_error is None
    assert r.position == 4 + min(r.replay_batch, r.replay.total - 4)  # type: ignore[union-attr]
