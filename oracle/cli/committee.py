"""``mira committee status``: the current epoch's committee, read from MiraOracle, and
which members answer on their p2p URL right now."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import click
from web3 import Web3

from oracle.chain import artifacts
from oracle.p2p.transport import HEALTH_PATH


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
    if epoch == 0:
        return {"epoch": 0, "threshold": None, "members": [], "online": 0}
    key = contract.functions.epochKey(epoch).call()
    members = contract.functions.members(epoch).call()

    async def probe_all() -> list[tuple[bool, str]]:
        return await asyncio.gather(
            *(_probe(str(m[2]), "0x" + bytes(m[1]).hex(), epoch, timeout) for m in members)
        )

    probes = asyncio.run(probe_all())
    rows = [
        {
            "index": i,
            "operator": str(m[0]),
            "p2p_url": str(m[2]),
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
    }


@click.group()
def committee() -> None:
    """The oracle committee as registered on-chain."""


@committee.command("status")
@click.option("--rpc-url", required=True, help="JSON-RPC URL of the chain.")
@click.option("--oracle", required=True, help="MiraOracle address.")
@click.option("--timeout", type=float, default=1.0, show_default=True, help="Per-member probe.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(rpc_url: str, oracle: str, timeout: float, as_json: bool) -> None:
    """Epoch, members (operator, p2p URL), threshold, and who is online."""
    out = committee_status(rpc_url, oracle, timeout)
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    if out["epoch"] == 0:
        click.echo("no epoch started")
        return
    click.echo(
        f"epoch {out['epoch']}: threshold {out['threshold']} of {out['size']}, "
        f"{out['online']} online"
    )
    for r in out["members"]:
        state = "online" if r["online"] else f"offline ({r.get('detail', '')})"
        click.echo(f"  {r['index']}  {r['operator']}  {r['p2p_url']}  {state}")
