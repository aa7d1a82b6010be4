"""`[network.peer_urls]` end to end: member 1 registers an unreachable p2p URL on-chain;
the others reach it only through the URL their node.toml gives for its operator. The DKG
waits for every member's round-1 message and the harness activates only a key all four
proposed, so the epoch starting at all proves the override carries the DKG; a value
landing proves it carries the rounds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from oracle.chain.anvil import Anvil, AnvilConfig
from tests.harness.localnet import UNREACHABLE_P2P_URL, HarnessNet

pytestmark = [pytest.mark.anvil, pytest.mark.slow, pytest.mark.timeout(240)]
N = 4
HIDDEN = 1


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HarnessNet]:
    with Anvil(AnvilConfig(block_time=1.0, accounts=N + 2)) as anvil:
        root: Path = tmp_path_factory.mktemp("peer-urls")
        network = HarnessNet(root, anvil.url, anvil.private_keys, N, hidden=HIDDEN)
        try:
            network.setup()
            network.start()
            network.wait_ready()
            yield network
        finally:
            network.stop()


def test_a_member_reached_through_peer_urls_takes_part(net: HarnessNet) -> None:
    assert net.oracle is not None
    members = net.oracle.functions.members(1).call()
    assert members[HIDDEN][2] == UNREACHABLE_P2P_URL  # what the chain says
    assert len(members) == N and tuple(net.oracle.functions.epochKey(1).call())[2:] == (3, N)
    config = (net.nodes[0].dir / "node.toml").read_text()
    assert "[network.peer_urls]" in config and net.nodes[HIDDEN].operator in config
    net.set_price(2345.0)
    net.until(lambda: net.proxy_answer()[1] == 2345 * 10**8, 20, "2345 on-chain")
    status = net.status(HIDDEN) or {}
    assert status.get("state") == "active" and status.get("epoch") == 1
