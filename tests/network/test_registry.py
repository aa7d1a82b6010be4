"""Models registered on-chain, on a live 4-node committee (each node its own `mira node
run`), anvil with 1 s blocks: registering and approving a model makes the committee
publish its feed with no node restarted and every member's commitments equal; hostile
specs are refused by every member with their reason while the other feeds keep updating;
a new version switches every member at the same boundary; a member restarted after the
approval resumes the model from its checkpoint; deactivation stops the reports.

One committee for the module (start-up is the expensive part): the scenarios run in the
order written and build on each other (model 1's versions).
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from click.testing import CliRunner

from oracle.chain.anvil import Anvil, AnvilConfig
from oracle.chain.deploy import at, deploy
from oracle.cli.main import cli
from oracle.client import NodeApi, check_outputs, landed_updates
from oracle.config.feeds import decimal_text, feed_id_bytes32
from oracle.devnet.processes import NodeProc, free_port
from oracle.registry.state import switch_at_ms
from oracle.reporting.rounds import period_ms, slot_of
from tests.harness.localnet import HarnessNet
from tests.registry.specs import data_uri, digest, http_spec_text, spec_text

pytestmark = [pytest.mark.anvil, pytest.mark.slow, pytest.mark.timeout(420)]
N = 4
FEED = "REG/live-vol"
SWITCH_AFTER_S = 8.0
HUGE = 10 * 1024 * 1024


class SpecServer:
    """Serves a 10 MB "spec" over http on 127.0.0.1, counting what each request took before
    the client hung up (kernel socket buffers included)."""

    def __init__(self, net: RegistryNet) -> None:
        self.net = net
        self.port = free_port()
        self.sent: list[int] = []

    async def _huge(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        sent = 0
        try:
            for _ in range(HUGE // 65536):
                await resp.write(b"#" * 65536)
                sent += 65536
        except (ConnectionError, RuntimeError):
            pass
        self.sent.append(sent)
        return resp

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/huge.toml", self._huge)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()

    def start(self) -> None:
        self.net.loop.run(self._start())


class RegistryNet(HarnessNet):
    """The harness committee with a ModelRegistry every member follows (``[models]``)."""

    registry_address: str | None = None

    def setup(self) -> None:
        super().setup()
        assert self.oracle is not None
        registry = deploy(self.w3, "ModelRegistry", self.oracle.address)
        self._wait(self.oracle.functions.setFeedRegistrar(registry.address).transact())
        self.registry = registry
        self.registry_address = registry.address
        for node in self.nodes:
            self.write_config(node)

    def write_config(self, node: NodeProc, **kwargs: Any) -> None:
        super().write_config(node, **kwargs)
        if self.registry_address is None:
            return
        (node.dir / "specs").mkdir(exist_ok=True)
        with (node.dir / "node.toml").open("a") as fh:
            fh.write(
                f'\n[models]\nregistry = "{self.registry_address}"\nconfirmations = 1\n'
                f'poll_s = 0.3\nspec_dir = "specs"\nswitch_after_s = {SWITCH_AFTER_S}\n'
            )

    def send(self, call: Any, sender: str | None = None) -> Any:
        tx = call.transact({"from": sender or self.w3.eth.accounts[0]})
        receipt = self.w3.eth.wait_for_transaction_receipt(tx, timeout=60)
        assert receipt["status"] == 1, receipt
        return receipt


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryNet]:
    with Anvil(AnvilConfig(block_time=1.0, accounts=N + 2)) as anvil:
        root: Path = tmp_path_factory.mktemp("registry-net")
        # the devnet's round period (1 s, a block each): "within 3 rounds of approval" is
        # counted in the rounds an operator runs
        network = RegistryNet(
            root,
            anvil.url,
            anvil.private_keys,
            N,
            round_period_s=1.0,
            observe_timeout_s=0.5,
            transmit_timeout_s=2.0,
        )
        try:
            network.setup()
            network.start()
            network.wait_ready()
            yield network
        finally:
            network.stop()


def _author(net: RegistryNet) -> str:
    return str(net.w3.eth.accounts[N + 1])


def _propose(net: RegistryNet, text: str, feed: str, uri: str | None = None) -> int:
    declared = [(feed_id_bytes32(feed), 8, feed)]
    net.send(
        net.registry.functions.propose(digest(text), uri or data_uri(text), declared),
        _author(net),
    )
    return int(net.registry.functions.modelCount().call())


def _approve(net: RegistryNet, model_id: int, version: int) -> dict[str, Any]:
    receipt = net.send(net.registry.functions.approve(model_id, version))
    block = net.w3.eth.get_block(receipt["blockNumber"])
    return {"block": int(receipt["blockNumber"]), "time_ms": int(block["timestamp"]) * 1000}


def _models(net: RegistryNet, i: int) -> dict[tuple[int, int], dict[str, Any]]:
    try:
        listed = NodeApi(net.nodes[i].api, timeout=3).models()
    except Exception:
        return {}
    return {(m["id"], m["version"]): m for m in listed}


def _latest(net: RegistryNet, feed: str) -> tuple[int, int, int]:
    assert net.oracle is not None
    r, v, t = net.oracle.functions.latestRound(feed_id_bytes32(feed)).call()
    return int(r), int(v), int(t)


def _pids(net: RegistryNet) -> list[int | None]:
    return [None if n.proc is None else n.proc.pid for n in net.nodes]


def _live_spec(version: int = 1, intercept_lr: float = 0.05) -> str:
    # rows released by the wall clock, one a second, from a minute ago: every member learns
    # the same rows after the approval, whenever it sees it
    start_ms = (int(time.time()) - 60) * 1000
    return spec_text(
        feed=FEED,
        version=version,
        start_ms=start_ms,
        step_ms=1000,
        realtime=True,
        intercept_lr=intercept_lr,
    )


SPEC_V1 = _live_spec()


def _outputs(net: RegistryNet, i: int, model_id: int, version: int) -> dict[str, Any]:
    return NodeApi(net.nodes[i].api, timeout=3).outputs(model_id, version, limit=1000)


def _commitments(outputs: dict[str, Any]) -> dict[int, str]:
    (rows,) = outputs["outputs"].values()
    return {int(r["seq"]): str(r["commitment"]) for r in rows}


def test_1_an_approved_model_is_published_without_a_restart(net: RegistryNet) -> None:
    pids = _pids(net)
    model_id = _propose(net, SPEC_V1, FEED)
    assert model_id == 1
    approval = _approve(net, 1, 1)
    net.until(lambda: _latest(net, FEED)[0] > 0, 30, "the registered feed on-chain")
    for i in range(N):
        net.until(
            lambda i=i: _models(net, i).get((1, 1), {}).get("status") == "running",  # type: ignore[misc]
            10,
            f"member {i} running model 1",
        )
    assert _pids(net) == pids  # no node restarted
    # every member's outputs: the same commitments for the same observations
    net.until(
        lambda: min(len(_commitments(_outputs(net, i, 1, 1))) for i in range(N)) >= 3,
        10,
        "three outputs on every member",
    )
    per_member = [_commitments(_outputs(net, i, 1, 1)) for i in range(N)]
    common = set.intersection(*(set(c) for c in per_member))
    assert len(common) >= 2, [len(c) for c in per_member]
    for seq in common:
        assert len({c[seq] for c in per_member}) == 1, seq
    # and what landed is what the members computed
    landed = landed_updates(net.w3, net.oracle.address, from_block=approval["block"])  # type: ignore[union-attr]
    checked = check_outputs(_outputs(net, 0, 1, 1), landed)
    assert checked["checked"] >= 1 and checked["mismatches"] == [], checked
    # published within 3 rounds of approval: the first report carrying the feed was signed
    # for a round at most 3 after the round of the approval's block (1 s blocks, 1 s rounds,
    # the registry read 1 block deep: the feed's first row after the approval is its first
    # output, its lags filled from the rows before)
    period = period_ms(net.round_period_s)
    first = min(u.round for u in landed if u.update.feed_id == feed_id_bytes32(FEED))
    rounds = (slot_of(first, period)) - slot_of(approval["time_ms"], period)
    print(f"registered feed first reported {rounds} rounds after the approval's block")
    assert rounds <= 3, rounds


def test_2_hostile_specs_are_refused_by_every_member(net: RegistryNet) -> None:
    server = SpecServer(net)
    server.start()
    hostile: dict[str, tuple[str, str | None]] = {
        "unknown_class": (spec_text(feed="REG/h1", scaler="preprocessing.EvilScaler"), None),
        "import_path": (spec_text(feed="REG/h2", scaler="os.system.path"), None),
        "invalid_parameter": (spec_text(feed="REG/h3", intercept_lr=1e9), None),
        "oversized": (spec_text(feed="REG/h5"), f"http://127.0.0.1:{server.port}/huge.toml"),
        "unreachable": (spec_text(feed="REG/h6"), "http://127.0.0.1:9/spec.toml"),
        "path_escape": (spec_text(feed="REG/h7"), "file://../node.toml"),
        "nondeterministic_source": (http_spec_text(feed="REG/h8"), None),
    }
    ids: dict[str, int] = {}
    for reason, (text, uri) in hostile.items():
        feed = str(text.split('"')[1])
        ids[reason] = _propose(net, text, feed, uri)
    # the hash on-chain is not the spec's
    text = spec_text(feed="REG/h4")
    declared = [(feed_id_bytes32("REG/h4"), 8, "h4")]
    other = digest(spec_text(feed="REG/h4", step_ms=2))
    net.send(net.registry.functions.propose(other, data_uri(text), declared), _author(net))
    ids["hash_mismatch"] = int(net.registry.functions.modelCount().call())
    for model_id in ids.values():
        _approve(net, model_id, 1)
    before = _latest(net, FEED)[0]
    net.set_price(2222.0)
    for i in range(N):
        for reason, model_id in ids.items():
            net.until(
                lambda i=i, m=model_id: _models(net, i).get((m, 1), {}).get("reason") is not None,  # type: ignore[misc]
                20,
                f"member {i} refusing model {model_id}",
            )
            entry = _models(net, i)[(model_id, 1)]
            assert (entry["status"], entry["reason"]) == ("rejected", reason), (i, entry)
    # no member read the whole 10 MB: each hung up after the cap
    assert server.sent and max(server.sent) < HUGE, server.sent
    # the other feeds kept updating: the local one and the registered one
    net.until(lambda: net.proxy_answer()[1] == 2222 * 10**8, 15, "ETH/USD at 2222")
    net.until(lambda: _latest(net, FEED)[0] > before, 15, "the registered feed moving on")
    metrics = net.metrics(0)
    assert 'mira_registry_rejections_total{reason="unknown_class"} 1.0' in metrics
    # mira model status: on-chain state and every member's view, of a running and a refused model
    for model_id, want in (
        (1, ("running", None)),
        (ids["unknown_class"], ("rejected", "unknown_class")),
    ):
        out = _status_cli(net, model_id)
        assert out["model"]["approved_version"] == 1
        assert [m["reachable"] for m in out["members"]] == [True] * N
        for member in out["members"]:
            (v,) = member["versions"]
            assert (v["status"], v["reason"]) == want, member
    running = _status_cli(net, 1)
    latest = running["model"]["feeds"][0]["latest"]
    assert latest["round"] > 0
    # the value as on-chain and with the feed's decimals written out (as `mira feed list`)
    assert (
        latest["decimals"]
        == net.oracle.functions.decimalsOf(  # type: ignore[union-attr]
            bytes.fromhex(running["model"]["feeds"][0]["feed_id"][2:])
        ).call()
    )
    assert latest["value_decimal"] == decimal_text(int(latest["value"]), latest["decimals"])


def _status_cli(net: RegistryNet, model_id: int) -> dict[str, Any]:
    assert net.oracle is not None
    args = ["model", "status", str(model_id), "--json", "--rpc-url", net.anvil_url]
    args += ["--oracle", net.oracle.address, "--registry", str(net.registry_address)]
    for node in net.nodes:
        args += ["--node", node.api]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.output))


def test_3_a_new_version_switches_every_member_at_one_boundary(net: RegistryNet) -> None:
    text = _live_spec(version=2, intercept_lr=0.04)
    net.send(
        net.registry.functions.publish(1, digest(text), data_uri(text)),
        _author(net),
    )
    approval = _approve(net, 1, 2)
    boundary = switch_at_ms(
        approval["time_ms"], period_ms(net.round_period_s), int(SWITCH_AFTER_S * 1000)
    )
    for i in range(N):
        net.until(
            lambda i=i: _models(net, i).get((1, 2), {}).get("status") == "running",  # type: ignore[misc]
            SWITCH_AFTER_S + 15,
            f"member {i} running version 2",
        )
        assert _models(net, i)[(1, 1)]["status"] == "superseded"
    assert time.time() * 1000 >= boundary
    net.until(
        lambda: _latest(net, FEED)[2] * 1000 > boundary + 2000, 15, "a report after the switch"
    )
    landed = landed_updates(net.w3, net.oracle.address, from_block=approval["block"])  # type: ignore[union-attr]
    feed_id = feed_id_bytes32(FEED)
    mine = [u for u in landed if u.update.feed_id == feed_id]
    after = [u for u in mine if u.update.observed_at * 1000 >= boundary + 1000]
    before = [u for u in mine if u.update.observed_at * 1000 < boundary - 1000]
    assert after
    for i in range(N):  # every member's v2 outputs are what landed after the boundary
        check = check_outputs(_outputs(net, i, 1, 2), after)
        assert check["checked"] == len(after) and check["mismatches"] == [], (i, check)
        if before:
            old = check_outputs(_outputs(net, i, 1, 1), before)
            assert old["mismatches"] == [], (i, old)


def test_4_a_member_restarted_after_approval_resumes_from_its_checkpoint(
    net: RegistryNet,
) -> None:
    member = 1
    time.sleep(6)  # the node checkpoints every 5 s
    net.kill(member, signal.SIGTERM)
    net.write_config(net.nodes[member])
    net.start(member)
    net.wait_ready(indices=[member], timeout=60)
    net.until(
        lambda: _models(net, member).get((1, 2), {}).get("status") == "running",
        15,
        "the restarted member running version 2 again",
    )
    log = (net.nodes[member].dir / "node.log").read_text(errors="replace")
    assert "m1v2" in log and "checkpoint_seq" in log
    time.sleep(3)
    ours = _commitments(_outputs(net, member, 1, 2))
    theirs = _commitments(_outputs(net, 0, 1, 2))
    common = set(ours) & set(theirs)
    assert common and all(ours[s] == theirs[s] for s in common)


def test_5_deactivation_stops_the_reports(net: RegistryNet) -> None:
    net.send(net.registry.functions.deactivate(1), _author(net))
    for i in range(N):
        net.until(
            lambda i=i: _models(net, i).get((1, 2), {}).get("status") == "deactivated",  # type: ignore[misc]
            15,
            f"member {i} stopping model 1",
        )
    time.sleep(2)  # a report signed before the stop may still land
    last = _latest(net, FEED)
    time.sleep(5)
    assert _latest(net, FEED) == last
    assert net.oracle is not None
    proxy = at(net.w3, "MiraFeedProxy", net.oracle.functions.proxyOf(feed_id_bytes32(FEED)).call())
    assert int(proxy.functions.latestRoundData().call()[1]) == last[1]  # the last value stays
