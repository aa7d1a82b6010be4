"""``mira model status ID``: a registered model as the chain holds it and as each member
runs it.

On-chain (the ModelRegistry's views): author, versions (spec hash, URI, proposed and
approved blocks), deactivation, declared feeds and each feed's latest on-chain value.
Per member (each ``--node`` API URL, ``GET /v1/models``): the status of every version
(accepted, running, rejected or unsupported with the reason, superseded, deactivated), the
commitment of the running one, and its model's rolling error. A member that does not answer
is shown as unreachable; the command still succeeds.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click
from web3 import Web3

from oracle.artifacts import load
from oracle.chain import registry as chain_registry
from oracle.chain.system import Manifest
from oracle.cli.options import ADDRESS, RPC_URL, emit, json_option
from oracle.client import ClientError, NodeApi
from oracle.config.feeds import decimal_text
from oracle.errors import ChainError, MiraError


def model_status(
    rpc_url: str, registry: str, oracle: str, model_id: int, nodes: list[str], timeout: float
) -> dict[str, Any]:
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
    if not w3.is_connected():
        raise ChainError(f"no JSON-RPC answer from {rpc_url}")
    reg = chain_registry.registry_at(w3, registry)
    count = chain_registry.model_count(reg)
    if not 1 <= model_id <= count:
        raise MiraError(f"no model {model_id} in registry {reg.address} (it holds {count})")
    m = chain_registry.model(reg, model_id)
    onchain: dict[str, Any] = {
        "id": model_id,
        "author": m.author,
        "version_count": m.version_count,
        "approved_version": m.approved_version,
        "deactivated": m.deactivated,
        "deactivated_block": m.deactivated_block or None,
        "feeds": [
            {
                "feed_id": "0x" + f.feed_id.hex(),
                "decimals": f.decimals,
                "description": f.description,
            }
            for f in chain_registry.feeds(reg, model_id)
        ],
        "versions": [],
    }
    for number in range(1, m.version_count + 1):
        v = chain_registry.version(reg, model_id, number)
        onchain["versions"].append(
            {
                "version": number,
                "spec_hash": "0x" + v.spec_hash.hex(),
                "spec_uri": v.spec_uri,
                "proposed_block": v.proposed_block,
                "approved_block": v.approved_block or None,
            }
        )
    contract = w3.eth.contract(address=Web3.to_checksum_address(oracle), abi=load("MiraOracle").abi)
    for feed in onchain["feeds"]:
        try:
            feed_id = bytes.fromhex(feed["feed_id"][2:])
            rnd, value, observed_at = contract.functions.latestRound(feed_id).call()
            decimals = int(contract.functions.decimalsOf(feed_id).call())
            feed["latest"] = (
                None
                if int(rnd) == 0
                else {
                    "round": int(rnd),
                    # the fixed-point integer on-chain, and as a decimal with the feed's
                    # decimals (what `mira feed list` shows)
                    "value": str(value),
                    "decimals": decimals,
                    "value_decimal": decimal_text(int(value), decimals),
                    "observed_at": int(observed_at),
                }
            )
        except Exception as exc:  # a reverted view (not registered yet): say so, go on
            feed["latest"] = None
            feed["error"] = f"{type(exc).__name__}: {exc}"[:200]
    members = [_member(url, model_id, timeout) for url in nodes]
    return {"model": onchain, "members": members}


def _member(url: str, model_id: int, timeout: float) -> dict[str, Any]:
    api = NodeApi(url, timeout=timeout)
    try:
        versions = [m for m in api.models() if m["id"] == model_id]
    except ClientError as exc:
        return {"node": url, "reachable": False, "error": str(exc)[:300]}
    out: dict[str, Any] = {
        "node": url,
        "reachable": True,
        "versions": [
            {k: m.get(k) for k in ("version", "status", "reason", "detail", "commitment")}
            for m in versions
        ],
    }
    running = [m for m in versions if m["status"] == "running" and m.get("feed")]
    if running:
        try:
            feed = api.feed(str(running[-1]["feed"]))
            out["model_error"] = feed.get("metrics")
            out["last_error"] = feed.get("last_error")
        except ClientError as exc:
            out["model_error"] = None
            out["last_error"] = str(exc)[:300]
    return out


@click.command("status")
@click.argument("model_id", type=click.IntRange(min=1))
@click.option(
    "--manifest",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Deployment manifest: RPC URL, oracle and model registry addresses.",
)
@click.option("--rpc-url", type=RPC_URL, default=None, help="JSON-RPC URL (else the manifest's).")
@click.option("--oracle", type=ADDRESS, default=None, help="MiraOracle (else the manifest's).")
@click.option("--registry", type=ADDRESS, default=None, help="ModelRegistry (else the manifest's).")
@click.option(
    "--node", "nodes", multiple=True, help="A member's API URL, http://host:port (repeatable)."
)
@click.option("--timeout", type=float, default=2.0, show_default=True, help="Per-member request.")
@json_option
def status(
    model_id: int,
    manifest: Path | None,
    rpc_url: str | None,
    oracle: str | None,
    registry: str | None,
    nodes: tuple[str, ...],
    timeout: float,
    as_json: bool,
) -> None:
    """Model ID on-chain (versions, feeds, latest values) and on each --node member."""
    if manifest is not None:
        m = Manifest.read(manifest)
        rpc_url, oracle = rpc_url or m.rpc_url, oracle or m.oracle
        registry = registry or m.model_registry or None
    if rpc_url is None or oracle is None or registry is None:
        raise click.UsageError("pass --manifest, or --rpc-url, --oracle and --registry")
    out = model_status(rpc_url, registry, oracle, model_id, list(nodes), timeout)
    model = out["model"]
    lines = [
        f"model {model['id']} by {model['author']}: approved version "
        f"{model['approved_version'] or 'none'} of {model['version_count']}"
        + (f", deactivated at block {model['deactivated_block']}" if model["deactivated"] else "")
    ]
    for v in model["versions"]:
        approved = f"approved at block {v['approved_block']}" if v["approved_block"] else "proposed"
        lines.append(f"  v{v['version']}  {v['spec_hash']}  {approved}  {v['spec_uri'][:60]}")
    for f in model["feeds"]:
        latest = f.get("latest")
        shown = (
            "no value yet"
            if latest is None
            else f"{latest['value_decimal']} (round {latest['round']}, observed "
            + time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(latest["observed_at"]))
            + ")"
        )
        lines.append(f"  feed {f['feed_id']} ({f['description']}): {shown}")
    for member in out["members"]:
        if not member["reachable"]:
            lines.append(f"  {member['node']}: unreachable ({member['error']})")
            continue
        states = ", ".join(
            f"v{v['version']} {v['status']}" + (f" ({v['reason']})" if v["reason"] else "")
            for v in member["versions"]
        )
        lines.append(f"  {member['node']}: {states or 'not seen'}")
    emit(out, as_json, lines)
