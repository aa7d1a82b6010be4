"""The node's registered models (oracle.node.registered) driven by registry events as the
follower stores them: approval starts a runner, each hostile spec is refused with its
reason while the others run, a new version takes over at its boundary, deactivation stops
the runner, and a restarted node resumes from what it stored."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from web3 import Web3

from oracle.api.server import ApiService, NodeView
from oracle.client import ClientError, LandedUpdate, NodeApi, check_outputs
from oracle.config.node import ApiConfig, default_models
from oracle.node.feeds import FeedRunner
from oracle.node.pipeline import FeedMetrics
from oracle.node.registered import RegisteredModels
from oracle.registry.state import apply, switch_at_ms
from oracle.service import Health
from oracle.storage import Store
from oracle.storage.registry import EventRow
from tests.registry.specs import FEED, data_uri, digest, feed_ids, spec_text

REGISTRY = "0x" + "11" * 20
PERIOD_MS = 1000
DELAY_MS = 5000
T0 = 1_700_000_000_000 + 100_000  # the approval blocks' times: inside the replay


class Node:
    """The pieces of a node the service is handed: its runners and what it calls back."""

    def __init__(self, engine: Engine) -> None:
        self.runners: dict[str, FeedRunner] = {}
        self.polled: set[str] = set()
        self.changes = 0
        self.session: aiohttp.ClientSession | None = None
        self.metrics = FeedMetrics(CollectorRegistry())
        self.store = Store(engine)

    def service(self, **policy: Any) -> RegisteredModels:
        return RegisteredModels(
            replace(default_models(), registry=Web3.to_checksum_address(REGISTRY), **policy),
            "http://127.0.0.1:9",  # never read: events are handed in
            self.store,
            self.metrics,
            self.runners,
            round_period_ms=PERIOD_MS,
            switch_delay_ms=DELAY_MS,
            session=lambda: self.session,
            add_runner=self.add,
            remove_runner=self.remove,
            feeds_changed=self.changed,
        )

    def add(self, key: str, runner: FeedRunner) -> None:
        self.runners[key] = runner
        self.polled.add(key)

    def remove(self, key: str) -> None:
        self.runners.pop(key)
        self.polled.discard(key)

    def changed(self) -> None:
        self.changes += 1


@pytest.fixture
async def node(engine: Engine) -> AsyncIterator[Node]:
    n = Node(engine)
    async with aiohttp.ClientSession() as session:
        n.session = session
        yield n


_block = iter(range(10, 10**6))


_proposed: dict[tuple[int, int], str] = {}  # (model, version) → spec text


def _events(*items: tuple[str, int, int, str | None]) -> list[EventRow]:
    """(kind, model, version, spec text) → the rows oracle.registry.events stores, in
    consecutive blocks. A proposal or a published version stores nothing (anyone can make
    them); the approval that follows is stored with its spec hash, URI, author and feeds."""
    out = []
    for kind, model, version, text in items:
        if kind in ("ModelProposed", "VersionPublished"):
            assert text is not None
            _proposed[(model, version)] = text
            continue
        b = next(_block)
        common = dict(
            block_number=b,
            block_hash=f"0x{b:064x}",
            log_index=0,
            block_time_ms=T0 + b * 1000,
            kind=kind,
            model_id=model,
            version=version,
        )
        if kind == "VersionApproved":
            approved = _proposed[(model, version)]
            feed = tomllib_feed(approved)
            common |= dict(
                spec_hash=digest(approved),
                spec_uri=data_uri(approved),
                feed_ids=json.dumps(["0x" + f.hex() for f in feed_ids(feed)]),
                actor="0x" + "22" * 20,
            )
        out.append(EventRow(**common))  # type: ignore[arg-type]
    return out


def tomllib_feed(text: str) -> str:
    import tomllib

    return str(tomllib.loads(text)["id"])


async def _feed(service: RegisteredModels, events: list[EventRow]) -> None:
    service.db.record(events, (events[-1].block_number, events[-1].block_hash))
    for e in events:
        apply(service.models, e)
    await service._reconcile()


def _status(service: RegisteredModels) -> dict[tuple[int, int], dict[str, object]]:
    return {(m["id"], m["version"]): m for m in service.status()}


def _rejections(node: Node, reason: str) -> float:
    value = node.metrics.registry.get_sample_value(
        "mira_registry_rejections_total", {"reason": reason}
    )
    return value or 0.0


HOSTILE = {
    "unknown_class": spec_text(feed="REG/h1", scaler="preprocessing.EvilScaler"),
    "import_path": spec_text(feed="REG/h2", scaler="os.system.path"),
    "invalid_parameter": spec_text(feed="REG/h3", intercept_lr=1e9),
    "unsupported": spec_text(feed="REG/h5", extra='min_node_version = "99.0"\n'),
}


async def test_lifecycle(node: Node) -> None:
    service = node.service()
    good = spec_text()
    await _feed(service, _events(("ModelProposed", 1, 1, good), ("VersionApproved", 1, 1, None)))
    status = _status(service)
    assert status[(1, 1)]["status"] == "running", status
    runner = node.runners["m1v1"]
    assert runner.reporting and runner.spec.id == FEED and "m1v1" in node.polled
    assert node.changes == 1
    # it starts after the approval block: the first row observed after its time
    approved_ms = service.models[1].versions[1].approved.time_ms  # type: ignore[union-attr]
    assert runner.position == (approved_ms - 1_700_000_000_000) // 1000 + 1
    await runner.poll()
    assert runner.pipeline.last_output is not None

    # every hostile spec is refused with its reason; the running model is unaffected
    items: list[tuple[str, int, int, str | None]] = []
    for i, text in enumerate(HOSTILE.values(), start=2):
        items += [("ModelProposed", i, 1, text), ("VersionApproved", i, 1, None)]
    events = _events(*items)
    # model 6: the spec's hash on-chain is another's
    bad_hash = _events(
        ("ModelProposed", 6, 1, spec_text(feed="REG/h6")), ("VersionApproved", 6, 1, None)
    )
    bad_hash[0] = replace(bad_hash[0], spec_hash=digest(spec_text(feed="REG/h6", step_ms=2)))
    # model 7: unreachable; model 8: an unknown scheme
    far = _events(
        ("ModelProposed", 7, 1, spec_text(feed="REG/h7")),
        ("VersionApproved", 7, 1, None),
        ("ModelProposed", 8, 1, spec_text(feed="REG/h8")),
        ("VersionApproved", 8, 1, None),
    )
    far[0] = replace(far[0], spec_uri="http://127.0.0.1:9/spec.toml")
    far[1] = replace(far[1], spec_uri="ipfs://QmSpec")
    await _feed(service, events + bad_hash + far)
    status = _status(service)
    for i, reason in enumerate(HOSTILE, start=2):
        assert (status[(i, 1)]["status"], status[(i, 1)]["reason"]) == (
            "unsupported" if reason == "unsupported" else "rejected",
            reason,
        )
        assert _rejections(node, reason) == 1
    assert status[(6, 1)]["reason"] == "hash_mismatch"
    assert status[(7, 1)]["reason"] == "unreachable"
    assert status[(8, 1)]["reason"] == "unknown_scheme"
    assert set(node.runners) == {"m1v1"}
    before = runner.pipeline.model.state.seq
    await runner.poll()
    assert runner.pipeline.model.state.seq > before  # the good model keeps learning

    # a new version: runs unreported from its own start, replaces v1 at the boundary
    v2 = spec_text(version=2, intercept_lr=0.04)
    published = _events(("VersionPublished", 1, 2, v2), ("VersionApproved", 1, 2, None))
    await _feed(service, published)
    assert _status(service)[(1, 2)]["status"] == "accepted"
    new = node.runners["m1v2"]
    assert not new.reporting and runner.reporting
    boundary = switch_at_ms(published[0].block_time_ms, PERIOD_MS, DELAY_MS)
    assert boundary % PERIOD_MS == 0 and boundary >= published[0].block_time_ms + DELAY_MS
    service.switch_due(boundary - 1)
    assert runner.reporting and not new.reporting
    service.switch_due(boundary)
    assert new.reporting and "m1v1" not in node.runners
    status = _status(service)
    assert (status[(1, 1)]["status"], status[(1, 2)]["status"]) == ("superseded", "running")
    # the old version's last state stays stored, for audit
    kept = node.store.latest_checkpoint("m1v1", runner.spec.digest)
    assert kept is not None and kept.seq == runner.pipeline.model.state.seq

    # a restart: the running version comes back from the stored spec and its checkpoint
    await new.poll()
    new.pipeline.checkpoint()
    seq, commitment = new.pipeline.model.state.seq, new.pipeline.model.commitment()
    node.runners.clear()
    node.metrics = FeedMetrics(CollectorRegistry())  # a new process
    again = node.service()
    for e in again.db.events():
        apply(again.models, e)
    again.versions = again.db.versions()
    await again._resume()
    await again._reconcile()
    resumed = node.runners["m1v2"]
    assert resumed.reporting and resumed.pipeline.model.state.seq == seq
    assert resumed.pipeline.model.commitment() == commitment
    assert set(node.runners) == {"m1v2"}  # the refused ones stay refused, no refetch

    # deactivation stops its runner: the feed is no longer reported
    await _feed(again, _events(("ModelDeactivated", 1, 0, None)))
    assert "m1v2" not in node.runners
    assert _status(again)[(1, 2)]["status"] == "deactivated"


async def test_local_policy_limits_the_models_carried(node: Node) -> None:
    service = node.service(max_models=1)
    await _feed(
        service,
        _events(
            ("ModelProposed", 1, 1, spec_text()),
            ("VersionApproved", 1, 1, None),
            ("ModelProposed", 2, 1, spec_text(feed="REG/two")),
            ("VersionApproved", 2, 1, None),
        ),
    )
    status = _status(service)
    assert status[(1, 1)]["status"] == "running"
    assert (status[(2, 1)]["status"], status[(2, 1)]["reason"]) == ("rejected", "local_policy")


async def test_declared_feeds_must_match(node: Node) -> None:
    service = node.service()
    events = _events(("ModelProposed", 1, 1, spec_text()), ("VersionApproved", 1, 1, None))
    events[0] = replace(events[0], feed_ids=json.dumps(["0x" + "ab" * 32]))
    await _feed(service, events)
    assert _status(service)[(1, 1)]["reason"] == "feeds_mismatch"
    assert not node.runners


async def test_approval_is_followed_only_once_per_version(node: Node) -> None:
    service = node.service()
    events = _events(("ModelProposed", 1, 1, spec_text()), ("VersionApproved", 1, 1, None))
    await _feed(service, events)
    runner = node.runners["m1v1"]
    await service._reconcile()
    assert node.runners["m1v1"] is runner and node.changes == 1
    assert time.time() > 0


async def test_api_serves_registered_models_and_outputs_check_against_reports(
    node: Node,
) -> None:
    service = node.service()
    await _feed(
        service,
        _events(
            ("ModelProposed", 1, 1, spec_text()),
            ("VersionApproved", 1, 1, None),
            ("ModelProposed", 2, 1, HOSTILE["unknown_class"]),
            ("VersionApproved", 2, 1, None),
        ),
    )
    runner = node.runners["m1v1"]
    await runner.poll()
    view = NodeView(
        "t",
        lambda: Health(True),
        node.runners,
        node.metrics.registry,
        registered=service.status,
        registered_outputs=service.outputs,
    )
    api = ApiService(ApiConfig("127.0.0.1", 0, 64 * 1024), view)
    await api.start()
    try:
        url = f"http://127.0.0.1:{api.port}"
        client = NodeApi(url)
        listed = await asyncio.to_thread(client.models)
        by_id = {(m["id"], m["version"]): m for m in listed}
        assert by_id[(1, 1)]["status"] == "running"
        assert by_id[(1, 1)]["commitment"] == "0x" + runner.pipeline.model.commitment().hex()
        assert (by_id[(2, 1)]["status"], by_id[(2, 1)]["reason"]) == ("rejected", "unknown_class")
        outputs = await asyncio.to_thread(client.outputs, 1, 0, 5)
        rows = outputs["outputs"]["0x" + feed_ids()[0].hex()]
        assert len(rows) == 5 and rows[-1]["seq"] == runner.pipeline.last_output.seq  # type: ignore[union-attr]
        with pytest.raises(ClientError, match="404"):
            await asyncio.to_thread(client.outputs, 2)  # refused: never ran
        with pytest.raises(ClientError, match="400"):
            await asyncio.to_thread(client._get, "/v1/models/x/outputs")
    finally:
        await api.stop()
    # what a transmitted report of this output carries checks out; a changed one does not
    (update,) = runner.latest_updates()
    landed = [LandedUpdate(5, 1, 9, update)]
    assert check_outputs(outputs, landed) == {
        "checked": 1,
        "mismatches": [],
        "not_in_node_window": 0,
    }
    forged = replace(update, model_commitment=b"\x07" * 32)
    assert len(check_outputs(outputs, [LandedUpdate(5, 1, 9, forged)])["mismatches"]) == 1


async def test_an_rpc_that_fails_is_retried_with_backoff_and_counted(node: Node) -> None:
    """The registry's RPC does not answer (port 9: refused): the follower logs, counts and
    retries; the service reports itself unhealthy and never crashes."""
    service = node.service()
    task = asyncio.create_task(service._follow())
    try:
        for _ in range(100):
            await asyncio.sleep(0.05)
            errors = node.metrics.registry.get_sample_value("mira_registry_rpc_errors_total")
            if errors is not None and errors >= 2:
                break
        assert errors is not None and errors >= 2
        assert not service.health().ok and "Connection" in service.health().detail
        assert not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
