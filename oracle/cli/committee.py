"""``mira committee``: the committee as MiraOracle holds it.

``status``   the current epoch's committee and which members answer on their p2p URL;
``propose``  (owner) propose the next epoch's committee: its members' nodes then run the
             DKG over p2p and each proposes the group key on-chain;
``activate`` (owner) wait for those proposals and activate the key t + f members agree on
             (f = ⌊(n − 1)/3⌋: then at least t honest members hold it, and it can sign).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import click
from eth_account import Account
from web3 import Web3

from oracle import artifacts
from oracle.chain.deploy import at
from oracle.chain.oracle_calls import MemberInfo
from oracle.chain.rotation import (
    KeyProposals,
    activate_when_proposed,
    key_proposals,
    propose_committee,
)
from oracle.chain.system import Sender
from oracle.cli.options import (
    emit,
    json_option,
    oracle_option,
    owner_keys_dir_option,
    passphrase_file_option,
    rpc_url_option,
)
from oracle.crypto.dkg import default_threshold
from oracle.crypto.keystore import KeyStore, read_passphrase
from oracle.errors import ChainError, MiraError
from oracle.p2p.transport import HEALTH_PATH
from oracle.progress import stderr_progress


async def _probe(url: str, identity_key: str, epoch: int, timeout: float) -> tuple[bool, str]:
    """Online: the member's p2p health answers with its registered identity key and
    serves the epoch."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.get(url.rstrip("/") + HEALTH_PATH) as resp,
        ):
            if resp.status != 200:
                return False, f"HTTP {resp.status}"
            body = await resp.json(content_type=None)
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}"[:120] or type(exc).__name__
    if not isinstance(body, dict) or body.get("ok") is not True:
        return False, "unhealthy answer"
    if str(body.get("identity_key", "")).lower() != identity_key.lower():
        return False, "another identity key answers there"
    if epoch not in body.get("epochs", []):
        return False, f"does not serve epoch {epoch}"
    return True, ""


def committee_status(rpc_url: str, oracle: str, timeout: float) -> dict[str, Any]:
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 10}))
    contract = w3.eth.contract(
        address=Web3.to_checksum_address(oracle), abi=artifacts.load("MiraOracle").abi
    )
    epoch = int(contract.functions.currentEpoch().call())
    proposals = key_proposals(contract)
    pending = None
    if proposals.epoch != 0:
        _, votes = proposals.best()
        pending = {
            "epoch": proposals.epoch,
            "proposal": proposals.proposal,
            "threshold": proposals.threshold,
            "size": proposals.size,
            "key_proposals": len(proposals.by_member),
            "agreeing": votes,
            "needed": proposals.quorum,
        }
    if epoch == 0:
        return {"epoch": 0, "threshold": None, "members": [], "online": 0, "pending": pending}
    key = contract.functions.epochKey(epoch).call()
    members = [MemberInfo.from_chain(m) for m in contract.functions.members(epoch).call()]

    async def probe_all() -> list[tuple[bool, str]]:
        return await asyncio.gather(
            *(_probe(m.p2p_url, "0x" + m.identity_key.hex(), epoch, timeout) for m in members)
        )

    probes = asyncio.run(probe_all())
    rows = [
        {
            "index": i,
            "operator": m.operator,
            "p2p_url": m.p2p_url,
            "online": ok,
            **({"detail": detail} if detail else {}),
        }
        for i, (m, (ok, detail)) in enumerate(zip(members, probes, strict=True))
    ]
    return {
        "epoch": epoch,
        "threshold": int(key[2]),
        "size": int(key[3]),
        "members": rows,
        "online": sum(1 for r in rows if r["online"]),
        "pending": pending,
    }


@click.group()
def committee() -> None:
    """The oracle committee as registered on-chain."""


@committee.command("status")
@rpc_url_option
@oracle_option
@click.option("--timeout", type=float, default=1.0, show_default=True, help="Per-member probe.")
@json_option
def status(rpc_url: str, oracle: str, timeout: float, as_json: bool) -> None:
    """Epoch, members (operator, p2p URL), threshold, and who is online."""
    out = committee_status(rpc_url, oracle, timeout)
    if as_json:
        click.echo(json.dumps(out, sort_keys=True))
        return
    if out["epoch"] == 0:
        click.echo("no epoch started")
    else:
        click.echo(
            f"epoch {out['epoch']}: threshold {out['threshold']} of {out['size']}, "
            f"{out['online']} online"
        )
        for r in out["members"]:
            state = "online" if r["online"] else f"offline ({r.get('detail', '')})"
            click.echo(f"  {r['index']}  {r['operator']}  {r['p2p_url']}  {state}")
    p = out["pending"]
    if p is not None:
        click.echo(
            f"pending epoch {p['epoch']} (proposal {p['proposal']}): threshold {p['threshold']} "
            f"of {p['size']}; {p['key_proposals']} members proposed a group key, "
            f"{p['agreeing']} agreeing (activation needs {p['needed']})"
        )


def _owner(rpc_url: str, oracle: str, keys_dir: Path, passphrase_file: Path | None) -> Any:
    operator = KeyStore(keys_dir).load_operator(read_passphrase(passphrase_file))
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
    if not w3.is_connected():
        raise ChainError(f"no JSON-RPC answer from {rpc_url}")
    if not Web3.is_address(oracle):
        raise ChainError(f"--oracle {oracle!r} is not an address")
    contract = at(w3, "MiraOracle", Web3.to_checksum_address(oracle))
    sender = Sender(w3, Account.from_key(operator.secret_bytes()))
    return contract, sender


def read_members(path: Path) -> list[MemberInfo]:
    """members.json: a list of {"operator", "identity_key", "p2p_url"} (what each node's
    ``mira keys show --json`` prints, plus where peers reach it)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise MiraError(f"{path}: cannot read members: {exc}") from None
    if not isinstance(doc, list) or not doc:
        raise MiraError(f"{path}: expected a non-empty JSON list of members")
    out = []
    for i, m in enumerate(doc):
        where = f"{path}: member {i}"
        if not isinstance(m, dict) or set(m) < {"operator", "identity_key", "p2p_url"}:
            raise MiraError(f"{where}: expected keys operator, identity_key, p2p_url")
        operator, key, url = m["operator"], m["identity_key"], m["p2p_url"]
        if not isinstance(operator, str) or not Web3.is_address(operator):
            raise MiraError(f"{where}: operator {operator!r} is not an address")
        try:
            identity = bytes.fromhex(str(key).removeprefix("0x"))
        except ValueError:
            identity = b""
        if len(identity) != 33 or identity[0] not in (2, 3):
            raise MiraError(f"{where}: identity_key must be a 33-byte compressed public key")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise MiraError(f"{where}: p2p_url {url!r} is not an http(s) URL")
        out.append(MemberInfo(Web3.to_checksum_address(operator), identity, url))
    return out


@committee.command("propose")
@rpc_url_option
@oracle_option
@click.option(
    "--members-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    required=True,
    help='JSON list of {"operator", "identity_key", "p2p_url"}, in member order.',
)
@click.option("--threshold", type=int, default=None, help="t (default 2f+1 for n = 3f+1).")
@owner_keys_dir_option
@passphrase_file_option
@json_option
def propose(
    rpc_url: str,
    oracle: str,
    members_file: Path,
    threshold: int | None,
    keys_dir: Path,
    passphrase_file: Path | None,
    as_json: bool,
) -> None:
    """Propose the next epoch's committee (owner). Its nodes then run the DKG."""
    members = read_members(members_file)
    t = default_threshold(len(members)) if threshold is None else threshold
    contract, sender = _owner(rpc_url, oracle, keys_dir, passphrase_file)
    epoch, proposal = propose_committee(contract, sender.send, t, members)
    emit(
        {"epoch": epoch, "proposal": proposal, "threshold": t, "size": len(members)},
        as_json,
        [
            f"proposed epoch {epoch} (proposal {proposal}): threshold {t} of {len(members)}; "
            "its members' nodes now run the DKG"
        ],
    )


@committee.command("activate")
@rpc_url_option
@oracle_option
@click.option(
    "--timeout",
    type=float,
    default=600.0,
    show_default=True,
    help="Seconds to wait for every member's key proposal (then t + f matching ones suffice).",
)
@owner_keys_dir_option
@passphrase_file_option
@json_option
def activate(
    rpc_url: str,
    oracle: str,
    timeout: float,
    keys_dir: Path,
    passphrase_file: Path | None,
    as_json: bool,
) -> None:
    """Wait for the members' group-key proposals, then activate the epoch (owner)."""
    contract, sender = _owner(rpc_url, oracle, keys_dir, passphrase_file)
    last: list[KeyProposals] = []
    with stderr_progress("mira committee activate") as progress:

        def proposals(state: KeyProposals) -> None:
            last[:] = [state]
            progress(
                f"epoch {state.epoch}: members' group-key proposals (threshold "
                f"{state.threshold}; activation needs {state.quorum} matching)",
                len(state.by_member),
                state.size,
            )

        epoch = activate_when_proposed(contract, sender.send, timeout=timeout, progress=proposals)
    state = last[-1]
    key, votes = state.best()
    assert key is not None  # activation needs t + f matching proposals
    emit(
        {
            "epoch": epoch,
            "group_key": {"x": hex(key[0]), "parity": key[1]},
            "proposed": len(state.by_member),
            "agreeing": votes,
            "size": state.size,
            "threshold": state.threshold,
        },
        as_json,
        [
            f"epoch {epoch} active: {len(state.by_member)} of {state.size} members proposed a "
            f"group key, {votes} of them this one (threshold {state.threshold})"
        ],
    )
