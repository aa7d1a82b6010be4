"""A 4-node committee (f = 1), each node its own `mira node run` process, on anvil with
1 s blocks; values from an HTTP source the test controls.

The scenarios share one committee (start-up is the expensive part), so their order is
part of the test: pytest runs a module's tests in the order they are written, and they
are numbered in that order. Each scenario restores what it broke (a restarted or killed
node, a faulty process, a paused RPC), and the ``restored`` fixture checks that before
the next one starts, so a scenario that fails to restore fails there, not in the next.
The rotation (test_11) changes the committee for good: it is last.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from oracle.chain.anvil import Anvil, AnvilConfig
from oracle.reporting.rounds import period_ms, slot_of
from oracle.storage.runs import read_observations
from tests.harness.localnet import LIE, HarnessNet

pytestmark = [pytest.mark.anvil, pytest.mark.slow, pytest.mark.timeout(300)]
N = 4
SCALE = 10**8


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HarnessNet]:
    with Anvil(AnvilConfig(block_time=1.0, accounts=N + 2)) as anvil:
        root: Path = tmp_path_factory.mktemp("localnet")
        network = HarnessNet(
            root, anvil.url, anvil.private_keys, N, transmit_timeout_s=2.0, pull=True
        )
        try:
            network.setup()
            network.start()
            network.wait_ready()
            yield network
        finally:
            network.stop()


@pytest.fixture(autouse=True)
def restored(net: HarnessNet) -> None:
    """Each scenario starts from the committee of epoch 1 with every member honest and
    serving (the previous scenario's clean-up is checked here, not assumed)."""
    assert not net.faults, f"a faulty member is still running: {net.faults}"
    assert not net.rpc.paused
    net.wait_ready(timeout=30)
    for i in range(N):
        status = net.status(i) or {}
        assert (status.get("state"), status.get("epoch")) == ("active", 1), (i, status)


def _price(net: HarnessNet, value: float) -> None:
    # a random phase: value changes must not stay in step with blocks and rounds, or the
    # same member would lead every reporting round
    time.sleep(random.uniform(0, 1.0))
    net.set_price(value)


def _slot(net: HarnessNet, round_: int) -> int:
    """The slot of a round (rounds are slot start times in ms): what the rotations count."""
    return slot_of(round_, period_ms(net.round_period_s))


def _onchain(net: HarnessNet) -> int:
    return net.proxy_answer()[1]


async def _json(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as s, s.get(url) as r:  # any status: 503 has a body
        data: dict[str, Any] = await r.json()
        return data


def _metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_1_all_honest_feeds_update(net: HarnessNet) -> None:
    net.until(lambda: _onchain(net) == 2000 * SCALE, 20, "the first value on-chain")
    _price(net, 2020.0)
    net.until(lambda: _onchain(net) == 2020 * SCALE, 10, "2020 on-chain")
    events = net.transmissions()
    assert len({e["round"] for e in events}) == len(events)  # no round landed twice


def test_2_reports_go_through_the_transaction_manager(net: HarnessNet) -> None:
    for i in range(N):
        health = net.loop.run(_json(net.nodes[i].api + "/readyz"))
        assert health.get("children", {}).get("transmission", {}).get("ok") is True, health
    operators = {net.nodes[i].operator: i for i in range(N)}
    events = net.transmissions()
    assert events

    def recorded(e: dict[str, Any]) -> tuple[Any, ...] | None:
        db = net.nodes[operators[e["sender"]]].dir / "node.sqlite"
        with sqlite3.connect(db) as conn:
            row: tuple[Any, ...] | None = conn.execute(
                "SELECT status, to_address, data FROM transmissions WHERE tx_hash = ?",
                (e["tx_hash"],),
            ).fetchone()
        return row

    for e in events:
        # each landed report is the manager's transmission in its sender's database (the
        # manager records the inclusion on its next poll)
        net.until(lambda e=e: recorded(e) is not None, 10, f"round {e['round']} recorded")  # type: ignore[misc]
        row = recorded(e)
        assert row is not None
        assert row[0] in ("included", "confirmed") and row[1] is not None and row[2], row


def test_3_invalid_shares_are_named_and_rounds_complete(net: HarnessNet) -> None:
    cheater = 2
    net.restart(cheater, fault="bad-shares")
    net.wait_ready(indices=[cheater])
    value = 2020.0
    named: set[str] = set()
    for _ in range(20):
        value += 20
        _price(net, value)
        target = round(value * SCALE)
        net.until(lambda t=target: _onchain(net) == t, 12, f"{value} on-chain")  # type: ignore[misc]
        for i in range(N):
            status = net.status(i) or {}
            named |= set(status.get("bad_signers", {}))
        if named:
            break
    assert named == {str(cheater)}
    # the round that exposed it still completed: the latest value is on-chain, and it is
    # counted in the leaders' metrics
    assert (
        sum(_metric(net.metrics(i), "mira_invalid_signature_shares_total") for i in range(N)) >= 1
    )
    net.restart(cheater)
    net.wait_ready(indices=[cheater])


def test_4_a_lying_leader_never_moves_the_value_and_is_named(net: HarnessNet) -> None:
    """Member 3 reads a source 30 % above the honest one and, in the rounds it leads,
    proposes that value to the honest followers (``lying-leader``: its own tolerance lets
    it ask everyone). With one liar among four, the median of any quorum of observations
    lies within the honest ones, so its proposal cannot pass as their median: each honest
    follower it asks refuses (``mira_round_refusals_total{reason="not_median"}``) and names
    it (``mira_round_offences_total``, ``bad_signers`` in /v1/network). Meanwhile the
    other leaders' rounds keep landing honest values, and no value the chain ever
    answers with is the lie."""
    liar = 3
    honest = [i for i in range(N) if i != liar]
    start_id, start_answer = net.proxy_answer()
    allowed = {start_answer}
    net.restart(liar, source="liar", fault="lying-leader", spec={"tolerance_bps": 10_000})
    net.wait_ready(indices=[liar])

    def refusals() -> float:
        return sum(
            _metric(net.metrics(i), 'mira_round_refusals_total{reason="not_median"}')
            for i in honest
        )

    def named() -> dict[int, dict[str, Any]]:
        return {i: (net.status(i) or {}).get("bad_signers", {}) for i in honest}

    for value in (2110.0, 2130.0, 2150.0):
        _price(net, value)
        target = round(value * SCALE)
        allowed.add(target)
        net.until(lambda t=target: _onchain(net) == t, 12, f"{value} on-chain")  # type: ignore[misc]
    # the liar leads every fourth slot and its own value is always "due": it proposes often
    net.until(lambda: refusals() >= 1, 20, "an honest follower refusing the liar's proposal")
    net.until(
        lambda: any("not_median" in n.get(str(liar), {}) for n in named().values()),
        10,
        "the liar named by a follower",
    )
    for i, offenders in named().items():
        # the liar, and only the liar, is named for it (earlier scenarios' offences stay)
        assert all("not_median" not in c for who, c in offenders.items() if who != str(liar))
        if str(liar) in offenders:
            assert offenders[str(liar)]["operator"] == net.nodes[liar].operator, (i, offenders)
    offences = f'mira_round_offences_total{{member="{liar}",offence="not_median"}}'
    assert sum(_metric(net.metrics(i), offences) for i in honest) >= 1
    # every value that landed while the liar ran was an honest one: the lie never did
    landed = set(net.proxy_answers_after(start_id))
    assert landed and landed <= allowed, (landed, allowed)
    assert round(LIE * SCALE) not in landed
    net.restart(liar)
    net.wait_ready(indices=[liar])


def test_5_killed_transmitter_is_replaced_by_the_next_in_rotation(net: HarnessNet) -> None:
    victim = 1
    net.kill(victim, signal.SIGKILL)
    start_block = net.w3.eth.block_number
    value = 2200.0
    covered = None
    for _ in range(25):
        value += 25
        _price(net, value)
        target = round(value * SCALE)
        net.until(lambda t=target: _onchain(net) == t, 15, f"{value} on-chain")  # type: ignore[misc]
        for e in net.transmissions(start_block):
            if (_slot(net, e["round"]) + 1) % N == victim:
                covered = e
        if covered:
            break
    assert covered is not None, "no round designated to the killed node happened"
    assert covered["sender"] != net.nodes[victim].operator
    assert covered["sender"] in {
        net.nodes[(_slot(net, covered["round"]) + 1 + k) % N].operator for k in (1, 2, 3)
    }
    net.start(victim)
    net.wait_ready(indices=[victim])


def test_6_sigkilled_node_restarts_and_rejoins_without_loss(net: HarnessNet) -> None:
    j = 2
    db = net.nodes[j].dir / "node.sqlite"
    net.kill(j, signal.SIGKILL)
    net.start(j)
    net.wait_ready(indices=[j])
    start_block = net.w3.eth.block_number
    value = 2900.0
    rejoined = False
    for _ in range(25):
        value += 30
        _price(net, value)
        target = round(value * SCALE)
        net.until(lambda t=target: _onchain(net) == t, 15, f"{value} on-chain")  # type: ignore[misc]
        if any(
            (_slot(net, e["round"]) + 1) % N == j and e["sender"] == net.nodes[j].operator
            for e in net.transmissions(start_block)
        ):
            rejoined = True
            break
    assert rejoined, "the restarted node never transmitted its designated round"
    with sqlite3.connect(db) as conn:
        runs = conn.execute(
            "SELECT feed_id, body FROM observation_runs ORDER BY last_seq"
        ).fetchall()
        seqs = [o.seq for feed_id, body in runs for o in read_observations(feed_id, body)]
        claimed = conn.execute("SELECT count(*) FROM transmissions").fetchone()[0]
        sent = conn.execute(
            "SELECT count(*) FROM transmissions WHERE tx_hash IS NOT NULL"
        ).fetchone()[0]
    assert seqs == list(range(1, len(seqs) + 1))  # no observation lost across the SIGKILL
    nonce = net.w3.eth.get_transaction_count(net.nodes[j].operator)
    # every transaction the node ever sent was claimed first (so never sent twice), and
    # the account nonce has no gap
    assert sent <= nonce <= claimed


def test_7_rpc_outage_recovers_without_operator_action(net: HarnessNet) -> None:
    net.rpc.paused = True
    try:
        _price(net, 3100.0)
        time.sleep(6)
    finally:
        net.rpc.paused = False
    net.until(lambda: _onchain(net) == 3100 * SCALE, 25, "3100 on-chain after the outage")
    errors = sum(_metric(net.metrics(i), "mira_chain_read_errors_total") for i in range(N))
    assert errors > 0  # the outage was seen, counted, and survived
    _price(net, 3130.0)
    net.until(lambda: _onchain(net) == 3130 * SCALE, 10, "3130 on-chain")


def test_8_committee_status_reads_the_chain_and_probes_members(net: HarnessNet) -> None:
    from click.testing import CliRunner

    from oracle.cli.main import cli

    assert net.oracle is not None
    args = ["committee", "status", "--rpc-url", net.anvil_url, "--oracle", net.oracle.address]
    result = CliRunner().invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert (out["epoch"], out["threshold"], out["size"], out["online"]) == (1, 3, N, N)
    assert [m["operator"] for m in out["members"]] == [n.operator for n in net.nodes]
    assert all(m["p2p_url"] == f"http://127.0.0.1:{n.p2p_port}" for m, n in zip(
        out["members"], net.nodes, strict=True))  # fmt: skip
    down = 3
    net.kill(down, signal.SIGKILL)
    try:
        result = CliRunner().invoke(cli, [*args, "--json", "--timeout", "0.5"])
        out = json.loads(result.output)
        assert out["online"] == N - 1
        assert [m["online"] for m in out["members"]] == [i != down for i in range(N)]
        text = CliRunner().invoke(cli, args).output
        assert f"threshold 3 of {N}, {N - 1} online" in text
    finally:
        net.start(down)
        net.wait_ready(indices=[down])


def test_9_subscribed_consumers_are_called_back_and_hostile_ones_cost_only_themselves(
    net: HarnessNet,
) -> None:
    """Issue 16: consumers subscribed to the feed are called back in each report's
    transaction. A well-behaved one receives every update with the value the proxy shows,
    while in the same reports a reverting, a gas-exhausting, a returndata-bombing and a
    re-entering consumer each fail with CallbackFailed and the feed still updates; a drained
    deposit is skipped (CallbackSkipped) and resumes after a top-up; unsubscribe stops the
    callbacks. Transmissions budget the consumers' whole gas limits, so none fails for lack
    of gas; the transmitter's reimbursement shows in /v1/network and /metrics and is withdrawn
    with `mira feed reimbursement --withdraw`; node 0's report stream carries every report,
    verified against the on-chain group key."""
    from click.testing import CliRunner
    from web3.logs import DISCARD

    from oracle import artifacts
    from oracle.api.stream_client import ReportStreamClient
    from oracle.chain.deploy import at
    from oracle.cli.main import cli

    oracle, w3, feed = net.oracle, net.w3, net.feed_id
    assert oracle is not None
    owner = w3.eth.accounts[0]

    def all_in(txs: list[Any]) -> list[Any]:  # sent together: one block for all (1 s blocks)
        receipts = [w3.eth.wait_for_transaction_receipt(tx, timeout=60) for tx in txs]
        assert all(r["status"] == 1 for r in receipts)
        return receipts

    def create(name: str, *args: Any) -> Any:
        art = artifacts.load(name)
        return w3.eth.contract(abi=art.abi, bytecode=art.bytecode).constructor(*args).transact()

    names = ["RecordingConsumer", "RecordingConsumer", "ReturnBombConsumer", "ReentrantConsumer"]
    names += ["RevertingConsumer", "GasBurningConsumer"]
    args: list[tuple[Any, ...]] = [(oracle.address,), (oracle.address,), (), (oracle.address, feed)]
    receipts = all_in([create(n, *a) for n, a in zip(names, [*args, (), ()], strict=True)])
    good, drained, bomb, reentrant, reverting, burner = (
        at(w3, n, r["contractAddress"]) for n, r in zip(names, receipts, strict=True)
    )
    hostile = {
        reverting.address: 0,  # CallbackFailure.Reverted
        burner.address: 1,  # GasExhausted
        bomb.address: 0,  # reverts with a megabyte of data (never copied)
        reentrant.address: 0,  # its re-entries are refused, and it reverts
    }
    # the bomb gets the gas to really return its megabyte (memory for it costs ~2.2M gas)
    limits = {good.address: 200_000, drained.address: 200_000, reentrant.address: 400_000}
    limits[bomb.address] = 2_500_000  # the contract's maximum
    txs = [
        bomb.functions.setRevert(True).transact(),
        reentrant.functions.setSwallow(False).transact(),
    ]
    for consumer in [good.address, drained.address, *hostile]:
        gas = limits.get(consumer, 100_000)
        txs.append(oracle.functions.subscribe(consumer, [feed], gas).transact({"value": 10**18}))
    all_in(txs)
    # drain one deposit: its owner takes all but one wei
    all_in([oracle.functions.withdraw(drained.address, owner, 10**18 - 1).transact()])

    streamed: list[Any] = []

    async def follow() -> None:
        client = ReportStreamClient(net.nodes[0].api, net.anvil_url, oracle.address)
        async for landed in client.reports():
            streamed.append(landed)

    stream = asyncio.run_coroutine_threadsafe(follow(), net.loop.loop)
    start_block = w3.eth.block_number
    base = _onchain(net) // SCALE
    reports: list[dict[str, Any]] = []

    def update(value: int) -> dict[str, Any]:
        """Move the price; the one report that lands it, with its receipt's events."""
        _price(net, float(value))
        net.until(lambda: _onchain(net) == value * SCALE, 15, f"{value} on-chain")
        events = net.transmissions(start_block)
        assert len(events) == len(reports) + 1, events  # one report per move
        e = events[-1]
        receipt = w3.eth.get_transaction_receipt(e["tx_hash"])
        e["failed"] = {
            ev["args"]["consumer"]: int(ev["args"]["reason"])
            for ev in oracle.events.CallbackFailed().process_receipt(receipt, errors=DISCARD)
        }
        e["skipped"] = [
            ev["args"]["consumer"]
            for ev in oracle.events.CallbackSkipped().process_receipt(receipt, errors=DISCARD)
        ]
        e["gas_limit"] = int(w3.eth.get_transaction(e["tx_hash"])["gas"])
        e["status"] = int(receipt["status"])
        reports.append(e)
        return e

    def delivered(consumer: Any) -> tuple[int, list[Any]]:
        return int(consumer.functions.calls().call()), consumer.functions.last().call()

    try:
        for k in (1, 2):
            e = update(base + 10 * k)
            assert e["failed"] == hostile  # each hostile consumer failed, with its reason
            assert e["skipped"] == [drained.address]
            calls, last = delivered(good)
            r, value, observed_at = oracle.functions.latestRound(feed).call()
            assert calls == k and [tuple(u) for u in last] == [(feed, value, observed_at, r)]
            assert value == net.proxy_answer()[1] == (base + 10 * k) * SCALE
        assert delivered(drained)[0] == 0

        net._wait(oracle.functions.deposit(drained.address).transact({"value": 10**18}))
        e = update(base + 30)
        assert e["skipped"] == [] and delivered(drained)[0] == 1  # topped up: called again
        assert delivered(good)[0] == 3

        net._wait(oracle.functions.unsubscribe(good.address, [feed]).transact())
        e = update(base + 40)
        assert delivered(good)[0] == 3 and delivered(drained)[0] == 2  # unsubscribed: no call
        assert e["failed"] == hostile

        # every transmission landed, with a gas limit covering every consumer's whole limit
        subscribed = sum(limits.get(c, 100_000) for c in [drained.address, *hostile])
        for e in reports:
            receipt = w3.eth.get_transaction_receipt(e["tx_hash"])
            assert e["status"] == 1
            assert e["gas_limit"] >= int(receipt["gasUsed"]) + subscribed, e
        net.until(lambda: len(streamed) >= len(reports), 10, "the stream to catch up")
    finally:
        stream.cancel()
    assert [r.tx_hash for r in streamed] == [e["tx_hash"] for e in reports]
    assert [r.decoded.updates[0].value for r in streamed] == [
        (base + 10 * k) * SCALE for k in (1, 2, 3, 4)
    ]

    # the callbacks' payments: the reports' transmitters can withdraw them
    sender = reports[-1]["sender"]
    index = next(i for i, n in enumerate(net.nodes) if n.operator == sender)
    owed = int(oracle.functions.reimbursementOf(sender).call())
    assert owed > 0
    net.until(
        lambda: (net.status(index) or {}).get("reimbursement_wei") == str(owed),
        10,
        "the reimbursement in /v1/network",
    )
    assert _metric(net.metrics(index), "mira_transmitter_reimbursement_wei") == pytest.approx(owed)
    keys = net.nodes[index].dir / "keys"
    result = CliRunner().invoke(
        cli,
        [
            "feed", "reimbursement", "--withdraw", "--json",
            "--rpc-url", net.anvil_url, "--oracle", oracle.address,
            "--keys-dir", str(keys), "--passphrase-file", str(keys / "passphrase"),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["amount_wei"] == owed
    assert int(oracle.functions.reimbursementOf(sender).call()) == 0


def _pull(net: HarnessNet, i: int) -> dict[str, Any]:
    """Member ``i``'s pull payload of the feed (any status: errors are JSON too)."""
    base = f"http://127.0.0.1:{net.nodes[i].api_port}"
    return asyncio.run(_json(f"{base}/v1/pull?feeds=0x{net.feed_id.hex()}"))


def _verify(net: HarnessNet, body: dict[str, Any], max_age: int) -> Any:
    assert net.pull_verifier is not None
    payload = bytes.fromhex(body["payload"][2:])
    return net.pull_verifier.functions.verify(payload, max_age).call()


def _refused(net: HarnessNet, body: dict[str, Any], max_age: int, error: str) -> None:
    from eth_utils.crypto import keccak
    from web3.exceptions import ContractCustomError

    with pytest.raises(ContractCustomError) as exc:
        _verify(net, body, max_age)
    assert str(exc.value.data)[2:10] == keccak(text=error)[:4].hex(), exc.value


_EPOCH_1_PAYLOAD: dict[str, Any] = {}


def test_10_pull_payloads_from_any_member_verify_on_chain(net: HarnessNet) -> None:
    """Every member signs a root each round and serves it; what a member's API hands out is
    accepted by MiraPullVerifier with the value the sources give, and refused once stale."""
    _price(net, 3120.0)
    for i in (0, 2):
        net.until(
            lambda i=i: _pull(net, i).get("values", [{}])[0].get("value") == str(3120 * SCALE),  # type: ignore[misc]
            15,
            f"member {i} serving a root of 3120",
        )
        body = _pull(net, i)
        assert body["epoch"] == 1 and body["verifier"].lower() == net.pull_verifier.address.lower()  # type: ignore[union-attr]
        values = _verify(net, body, 60)
        assert [(v[0], v[1]) for v in values] == [(net.feed_id, 3120 * SCALE)]
    # roots are led in turn: the members kept roots of more than one leader
    led = [(net.status(i) or {}).get("pull_roots_led", 0) for i in range(N)]
    assert sum(1 for n in led if n > 0) >= 2, led
    # a root older than the consumer's maxAge (1 s blocks: two blocks later)
    time.sleep(2.5)
    _refused(net, body, 0, "StaleRoot(uint64,uint256)")
    _EPOCH_1_PAYLOAD.update(body)


def test_11_live_rotation_to_a_smaller_committee_by_network_dkg(net: HarnessNet) -> None:
    """The owner proposes epoch 2 without node 3. Nodes 0–2 run the DKG over p2p while
    they keep serving epoch 1, propose the key; once it is activated they switch to
    epoch 2 without a restart, and node 3 stops signing. (Last: it changes the network.)"""
    from oracle.chain.rotation import activate_when_proposed, key_proposals, propose_committee

    assert net.oracle is not None
    keep = [0, 1, 2]
    members = [net.committee.members[i] for i in keep]
    epoch, proposal = propose_committee(net.oracle, net._send, 2, members)
    assert (epoch, proposal) == (2, 2)  # proposal 1 was epoch 1's
    net.until(lambda: len(key_proposals(net.oracle).by_member) == 3, 30, "3 key proposals")
    state = key_proposals(net.oracle)
    assert len(set(state.by_member.values())) == 1  # all three derived the same key
    _price(net, 3300.0)  # epoch 1 still serves while epoch 2 is pending
    net.until(lambda: _onchain(net) == 3300 * SCALE, 15, "3300 on-chain under epoch 1")

    assert activate_when_proposed(net.oracle, net._send, timeout=10) == 2
    for i in keep:
        net.until(lambda i=i: (net.status(i) or {}).get("epoch") == 2, 15, f"node {i} in epoch 2")  # type: ignore[misc]
    net.until(
        lambda: str((net.status(3) or {}).get("state", "")).startswith("idle"), 15, "node 3 idle"
    )
    start_block = net.w3.eth.block_number
    _price(net, 3350.0)
    net.until(lambda: _onchain(net) == 3350 * SCALE, 15, "3350 on-chain under epoch 2")
    events = net.transmissions(start_block)
    assert events and all(e["epoch"] == 2 for e in events)
    assert all(e["sender"] != net.nodes[3].operator for e in events)
    status = net.status(0) or {}
    assert (status["n"], status["threshold"]) == (3, 2)

    # pull: epoch 2's roots verify; epoch 1's are refused once its grace period is over
    # (the harness's MiraOracle keeps a retired key 3600 s: the chain's clock jumps; last)
    net.until(lambda: _pull(net, 0).get("epoch") == 2, 15, "a root of epoch 2")
    assert _EPOCH_1_PAYLOAD, "test_10 kept no epoch-1 payload"
    _verify(net, _EPOCH_1_PAYLOAD, 10**9)  # within the grace period
    net.w3.provider.make_request("evm_increaseTime", [3601])  # type: ignore[arg-type]
    net.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    _refused(net, _EPOCH_1_PAYLOAD, 10**9, "EpochRetired(uint64,uint64)")
    _verify(net, _pull(net, 0), 10**9)
