"""Key shares are kept per chain and oracle contract: epoch and proposal numbers restart at
1 with every deployment, so a share named by them alone was found again by a node pointed
at another chain or contract (a devnet restarted in its directory waited in the key
generation for ever: "epoch-1-proposal-1.json is not this node's key share")."""

from __future__ import annotations

from pathlib import Path

from oracle.node.keyshare import share_file, shares_dir

ORACLE = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
OTHER = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"


def test_the_same_epoch_and_proposal_of_another_chain_or_contract_is_another_file(
    tmp_path: Path,
) -> None:
    keys = tmp_path / "keys"
    mine = share_file(shares_dir(keys, 31337, ORACLE), 1, 1)
    assert share_file(shares_dir(keys, 1, ORACLE), 1, 1) != mine  # another chain
    assert share_file(shares_dir(keys, 31337, OTHER), 1, 1) != mine  # another contract
    assert share_file(shares_dir(keys, 31337, ORACLE), 1, 2) != mine  # another proposal
    # one contract however its address is spelled (checksummed or not)
    assert share_file(shares_dir(keys, 31337, ORACLE.lower()), 1, 1) == mine
    assert mine.is_relative_to(keys / "shares")
    assert str(31337) in mine.parent.name and ORACLE.lower() in mine.parent.name
