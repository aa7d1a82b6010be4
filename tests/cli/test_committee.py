"""``mira committee propose|activate`` against a real anvil: the owner's side of a
rotation. The members' side (nodes running the DKG over p2p) is tests/network; here the
members' key proposals are sent from their anvil accounts with a key from an in-process
DKG."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from web3 import Web3

from oracle.chain.anvil import Anvil
from oracle.chain.deploy import at
from oracle.cli.main import cli
from oracle.crypto.dkg import run_dkg_in_one_process
from oracle.crypto.envelope import IdentityKey
from oracle.crypto.keystore import KeyStore
from oracle.crypto.suites import MIRA_EVM

pytestmark = pytest.mark.anvil
PASS = "correct horse battery staple"
FEEDS = Path(__file__).resolve().parents[2] / "feeds"


@pytest.fixture
def deployed(w3: Web3, anvil: Anvil, tmp_path: Path) -> dict[str, Any]:
    keys = tmp_path / "owner"
    created = KeyStore(keys).create(PASS.encode())
    owner = Web3.to_checksum_address(created["operator"]["address"])
    w3.eth.wait_for_transaction_receipt(
        w3.eth.send_transaction({"to": owner, "value": Web3.to_wei(10, "ether")})
    )
    out = tmp_path / "manifest.json"
    args = ["deploy", "--rpc-url", anvil.url, "--keys-dir", str(keys), "--out", str(out)]
    result = CliRunner().invoke(cli, [*args, "--feeds-dir", str(FEEDS)], env=_env())
    assert result.exit_code == 0, result.output
    manifest = json.loads(out.read_text())
    members = [
        {
            "operator": w3.eth.accounts[i + 1],
            "identity_key": "0x" + IdentityKey().public_bytes.hex(),
            "p2p_url": f"http://node{i}:7701",
        }
        for i in range(4)
    ]
    members_file = tmp_path / "members.json"
    members_file.write_text(json.dumps(members))
    base = ["--rpc-url", anvil.url, "--oracle", manifest["oracle"], "--keys-dir", str(keys)]
    return {
        "oracle": at(w3, "MiraOracle", manifest["oracle"]),
        "base": base,
        "members": members,
        "members_file": members_file,
    }


def _env() -> dict[str, str]:
    return {"MIRA_KEY_PASSPHRASE": PASS}


def _run(*args: str) -> Any:
    return CliRunner().invoke(cli, ["committee", *args], env=_env())


def _propose_key(w3: Web3, oracle: Any, member: int, group_key: Any) -> None:
    tx = oracle.functions.proposeGroupKey(1, group_key.x, group_key.parity).transact(
        {"from": w3.eth.accounts[member + 1]}
    )
    assert w3.eth.wait_for_transaction_receipt(tx)["status"] == 1


def test_propose_then_activate_the_key_the_members_proposed(
    w3: Web3, deployed: dict[str, Any]
) -> None:
    base, oracle = deployed["base"], deployed["oracle"]
    result = _run("propose", *base, "--members-file", str(deployed["members_file"]))
    assert result.exit_code == 0, result.output
    assert "proposed epoch 1 (proposal 1): threshold 3 of 4" in result.output
    epoch, proposal, t, members = oracle.functions.pendingCommittee().call()
    assert (epoch, proposal, t, len(members)) == (1, 1, 3, 4)
    assert members[2][2] == "http://node2:7701"

    key = run_dkg_in_one_process(MIRA_EVM, 3, 4).public.group_key
    for i in range(3):
        _propose_key(w3, oracle, i, key)
    status = _run("status", "--rpc-url", base[1], "--oracle", base[3])
    assert status.exit_code == 0, status.output
    assert "no epoch started" in status.output
    assert "pending epoch 1 (proposal 1): threshold 3 of 4; 3 members proposed" in status.output
    _propose_key(w3, oracle, 3, key)
    result = _run("activate", *base, "--timeout", "30")
    assert result.exit_code == 0, result.output
    assert "4 of 4 members proposed" in result.output and "epoch 1 active" in result.output
    assert oracle.functions.currentEpoch().call() == 1
    assert tuple(oracle.functions.groupKey(1).call()) == (key.x, key.parity)


def test_activate_refuses_fewer_than_t_plus_f_matching_proposals_and_says_who_proposed_what(
    w3: Web3, deployed: dict[str, Any]
) -> None:
    """n = 4, t = 3, f = 1: t matching proposals are not enough — of three members holding
    the key one may be Byzantine and withhold its share, and the epoch could never sign.
    The owner activates only with t + f = 4."""
    base, oracle = deployed["base"], deployed["oracle"]
    assert _run("propose", *base, "--members-file", str(deployed["members_file"])).exit_code == 0
    key = run_dkg_in_one_process(MIRA_EVM, 3, 4).public.group_key
    other = run_dkg_in_one_process(MIRA_EVM, 3, 4).public.group_key
    _propose_key(w3, oracle, 0, key)
    _propose_key(w3, oracle, 2, key)
    result = _run("activate", *base, "--timeout", "1")
    assert result.exit_code == 1
    assert "2 of 4 members proposed the same group key (need 4: t = 3 plus f = 1)" in result.output
    assert "no proposal from members [1, 3]" in result.output
    _propose_key(w3, oracle, 3, key)  # t = 3 matching: the old rule activated here
    result = _run("activate", *base, "--timeout", "1")
    assert result.exit_code == 1, result.output
    assert "3 of 4 members proposed the same group key (need 4" in result.output
    _propose_key(w3, oracle, 1, other)
    result = _run("activate", *base, "--timeout", "1")
    assert result.exit_code == 1, result.output
    assert f"members [0, 2, 3] proposed {_hex(key)}" in result.output
    assert f"members [1] proposed {_hex(other)}" in result.output
    assert oracle.functions.currentEpoch().call() == 0


def test_activate_with_t_plus_f_of_five_after_the_timeout(
    w3: Web3, deployed: dict[str, Any], tmp_path: Path
) -> None:
    """n = 5, t = 3, f = 1: four matching proposals (one member silent) activate."""
    base, oracle = deployed["base"], deployed["oracle"]
    five = [
        *deployed["members"],
        {
            "operator": w3.eth.accounts[5],
            "identity_key": "0x" + IdentityKey().public_bytes.hex(),
            "p2p_url": "http://node4:7701",
        },
    ]
    members_file = tmp_path / "five.json"
    members_file.write_text(json.dumps(five))
    assert _run("propose", *base, "--members-file", str(members_file)).exit_code == 0
    key = run_dkg_in_one_process(MIRA_EVM, 3, 5).public.group_key
    for i in range(4):
        _propose_key(w3, oracle, i, key)
    result = _run("activate", *base, "--timeout", "1")
    assert result.exit_code == 0, result.output
    assert oracle.functions.currentEpoch().call() == 1
    assert tuple(oracle.functions.groupKey(1).call()) == (key.x, key.parity)


def _hex(point: Any) -> str:
    return "0x" + point.serialize().hex()


def test_bad_members_files_and_nothing_pending_are_one_clear_line(
    deployed: dict[str, Any], tmp_path: Path
) -> None:
    base = deployed["base"]
    good = deployed["members"][0]
    cases = {
        "[]": "expected a non-empty JSON list",
        "{}": "expected a non-empty JSON list",
        "not json": "cannot read members",
        json.dumps([{"operator": good["operator"]}]): "expected keys operator, identity_key",
        json.dumps([{**good, "operator": "0x1234"}]): "is not an address",
        json.dumps([{**good, "identity_key": "0x02ab"}]): "33-byte compressed public key",
        json.dumps([{**good, "identity_key": "zz" * 33}]): "33-byte compressed public key",
        json.dumps([{**good, "p2p_url": "ftp://x"}]): "is not an http(s) URL",
    }
    for text, expected in cases.items():
        path = tmp_path / "members-bad.json"
        path.write_text(text)
        result = _run("propose", *base, "--members-file", str(path))
        assert result.exit_code == 1, (text, result.output)
        assert expected in result.output and "Traceback" not in result.output, result.output
    result = _run("propose", *base, "--members-file", str(deployed["members_file"]))
    assert result.exit_code == 0
    too_high = _run(
        "propose", *base, "--members-file", str(deployed["members_file"]), "--threshold", "5"
    )
    assert too_high.exit_code == 1 and "threshold 5 is not between 1 and 4" in too_high.output
    # the failed calls left the pending proposal as it was
    assert deployed["oracle"].functions.pendingCommittee().call()[1] == 1


def test_activate_with_nothing_pending_and_a_wrong_oracle(
    anvil: Anvil, deployed: dict[str, Any]
) -> None:
    result = _run("activate", *deployed["base"], "--timeout", "1")
    assert result.exit_code == 1
    assert "no committee proposal is pending (propose one first)" in result.output
    base = list(deployed["base"])
    base[base.index("--oracle") + 1] = "0x1234"
    result = _run("activate", *base)  # a malformed argument: a usage error (#21)
    assert result.exit_code == 2 and "is not an address" in result.output


def test_members_file_from_each_nodes_keys_show_member_url(
    deployed: dict[str, Any], tmp_path: Path
) -> None:
    """Each operator prints its own entry (`mira keys show --member-url`); the owner
    concatenates them into the members file."""
    entries = []
    for i in range(4):
        keys = tmp_path / f"node{i}"
        KeyStore(keys).create(PASS.encode())
        url = f"https://node{i}.example.org:7701"
        shown = CliRunner().invoke(
            cli, ["keys", "show", "--dir", str(keys), "--verify", "--member-url", url], env=_env()
        )
        assert shown.exit_code == 0, shown.output
        entry = json.loads(shown.output)
        assert entry["p2p_url"] == url and PASS not in shown.output
        entries.append(entry)
    members_file = tmp_path / "from-nodes.json"
    members_file.write_text(json.dumps(entries))
    result = _run("propose", *deployed["base"], "--members-file", str(members_file))
    assert result.exit_code == 0, result.output
    _, _, _, members = deployed["oracle"].functions.pendingCommittee().call()
    assert [m[0] for m in members] == [Web3.to_checksum_address(e["operator"]) for e in entries]
    assert ["0x" + bytes(m[1]).hex() for m in members] == [
        "0x" + e["identity_key"].removeprefix("0x") for e in entries
    ]
    bad = CliRunner().invoke(
        cli, ["keys", "show", "--dir", str(tmp_path / "node0"), "--member-url", "node0:7701"]
    )
    assert bad.exit_code == 2 and "is not an http(s) URL" in bad.output


def test_the_owner_verbs_print_one_json_object_with_json(
    w3: Web3, deployed: dict[str, Any]
) -> None:
    """--json: stdout is exactly one JSON object with the fields docs/cli.md names; the
    activation wait's progress stays on stderr."""
    base, oracle = deployed["base"], deployed["oracle"]
    status_args = ["status", "--rpc-url", base[1], "--oracle", base[3], "--json"]
    proposed = _run("propose", *base, "--members-file", str(deployed["members_file"]), "--json")
    assert proposed.exit_code == 0, proposed.output
    assert json.loads(proposed.stdout) == {"epoch": 1, "proposal": 1, "threshold": 3, "size": 4}
    key = run_dkg_in_one_process(MIRA_EVM, 3, 4).public.group_key
    for i in range(4):
        _propose_key(w3, oracle, i, key)
    pending = json.loads(_run(*status_args).stdout)["pending"]
    assert pending["key_proposals"] == 4 and pending["agreeing"] == 4
    activated = _run("activate", *base, "--timeout", "30", "--json")
    assert activated.exit_code == 0, activated.output
    assert json.loads(activated.stdout) == {
        "epoch": 1,
        "group_key": {"x": hex(key.x), "parity": key.parity},
        "proposed": 4,
        "agreeing": 4,
        "size": 4,
        "threshold": 3,
    }
    assert "mira committee activate:" in activated.stderr
    status = json.loads(_run(*status_args).stdout)
    assert status["epoch"] == 1 and status["threshold"] == 3 and status["pending"] is None
