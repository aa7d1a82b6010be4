"""The DKG among real `mira node run` processes on anvil: n = 5, t = 3 (f = 1), one
member never starts. After the DKG phase timeout the four that answered (t + f) finish
without it, `GET /v1/network` names it, and the owner's tooling activates their key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from oracle.chain.anvil import Anvil, AnvilConfig
from oracle.chain.rotation import activate_when_proposed, key_proposals
from tests.harness.localnet import HarnessNet

pytestmark = [pytest.mark.anvil, pytest.mark.slow, pytest.mark.timeout(240)]
N, SILENT = 5, 4


@pytest.fixture
def net(tmp_path: Path) -> Iterator[HarnessNet]:
    with Anvil(AnvilConfig(block_time=1.0, accounts=N + 2)) as anvil:
        network = HarnessNet(tmp_path, anvil.url, anvil.private_keys, N, dkg_phase_timeout_s=2.0)
        try:
            network.setup()
            for i in range(N):
                if i != SILENT:
                    network.start(i)
            yield network
        finally:
            network.stop()


def test_a_silent_member_is_left_out_named_in_v1_network_and_the_rest_activate(
    net: HarnessNet,
) -> None:
    assert net.oracle is not None
    oracle = net.oracle
    net.until(lambda: len(key_proposals(oracle).by_member) == N - 1, 90, "4 key proposals")
    state = key_proposals(oracle)
    assert sorted(state.by_member) == [0, 1, 2, 3]
    assert len(set(state.by_member.values())) == 1  # the four derived the same key
    for i in range(N - 1):
        keygen = (net.status(i) or {}).get("keygen", {})
        assert keygen.get("left_out") == [SILENT], keygen
        assert f"went on without members [{SILENT}]" in keygen.get("state", ""), keygen
    assert activate_when_proposed(oracle, net._send, timeout=3) == 1
