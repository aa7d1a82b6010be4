"""A small client for model authors' notebooks: the models a registry holds, what a node
runs of them, and a check of a node's outputs against what landed on-chain.

    from oracle.chain import registry
    from oracle.client import NodeApi, check_outputs, landed_updates
    node = NodeApi("http://127.0.0.1:8080")
    node.models()                       # every registered version as this node sees it
    outs = node.outputs(1)              # model 1's outputs and commitments, per feed
    reg = registry.registry_at(w3, address)  # on-chain reads: registry.model(reg, 1),
                                             # registry.version(reg, 1, 2), registry.feeds(...)
    landed = landed_updates(w3, oracle, from_block=0)
    check_outputs(outs, landed)         # every landed update of the model's feeds equals
                                        # the node's output at that time (value, commitment)

Synchronous (requests, web3's HTTP provider): what a notebook cell calls directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests
from eth_hash.auto import keccak
from web3 import Web3

from oracle.errors import MiraError
from oracle.reporting.landed import transmit_arguments
from oracle.reporting.report import FeedUpdate, decode

_TRANSMITTED = "0x" + keccak(b"ReportTransmitted(uint64,uint64,bytes32[])").hex()
_MAX_RANGE = 500  # blocks per eth_getLogs call


class ClientError(MiraError):
    """A node or the chain did not answer as expected."""


class NodeApi:
    """One node's REST API (oracle.api.server)."""

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _get(self, path: str, **params: Any) -> Any:
        try:
            resp = requests.get(self.url + path, params=params, timeout=self.timeout)
        except requests.RequestException as exc:
            raise ClientError(f"{self.url}{path}: {type(exc).__name__}: {exc}") from exc
        try:
            body = resp.json()
        except ValueError as exc:
            raise ClientError(f"{self.url}{path}: HTTP {resp.status_code}, not JSON") from exc
        if resp.status_code != 200:
            message = body.get("error", {}).get("message") if isinstance(body, dict) else None
            raise ClientError(f"{self.url}{path}: HTTP {resp.status_code}: {message or body}")
        return body

    def models(self) -> list[dict[str, Any]]:
        """Every version of every registered model, with this node's status and reason."""
        return list(self._get("/v1/models").get("registered", []))

    def feeds(self) -> list[dict[str, Any]]:
        return list(self._get("/v1/feeds")["feeds"])

    def feed(self, feed: str) -> dict[str, Any]:
        return dict(self._get(f"/v1/feeds/{feed}"))

    def outputs(self, model_id: int, version: int = 0, limit: int = 100) -> dict[str, Any]:
        """A version's newest outputs (version 0: the one the node runs or last ran)."""
        return dict(self._get(f"/v1/models/{model_id}/outputs", version=version, limit=limit))


@dataclass(frozen=True)
class LandedUpdate:
    block: int
    epoch: int
    round: int
    update: FeedUpdate


def landed_updates(
    w3: Web3, oracle: str, *, from_block: int, to_block: int | None = None
) -> list[LandedUpdate]:
    """Every feed update of every report transmitted to ``oracle`` in the block range, in
    chain order, read from the transactions' call data (what the committee signed)."""
    address = Web3.to_checksum_address(oracle)
    end = int(w3.eth.block_number) if to_block is None else to_block
    out: list[LandedUpdate] = []
    for lo in range(from_block, end + 1, _MAX_RANGE):
        logs = w3.eth.get_logs(
            {
                "address": address,
                "topics": [_TRANSMITTED],
                "fromBlock": lo,
                "toBlock": min(end, lo + _MAX_RANGE - 1),
            }
        )
        for entry in logs:
            tx = w3.eth.get_transaction(entry["transactionHash"])
            if str(tx.get("to", "")).lower() != address.lower():
                continue  # through another contract: not transmit's call data
            report = decode(transmit_arguments(bytes(tx["input"]))[0])
            for u in report.updates:
                out.append(LandedUpdate(int(entry["blockNumber"]), report.epoch, report.round, u))
    return out


def check_outputs(outputs: dict[str, Any], landed: list[LandedUpdate]) -> dict[str, Any]:
    """Each landed update of the model's feeds against the node's output observed at the
    same second: value and commitment must be equal. ``outputs`` is
    :meth:`NodeApi.outputs`; updates older than the outputs it holds are not checked."""
    by_feed = outputs.get("outputs", {})
    checked, mismatches, unmatched = 0, [], 0
    for item in landed:
        rows = by_feed.get("0x" + item.update.feed_id.hex())
        if rows is None:
            continue  # another model's feed
        mine = [r for r in rows if int(r["observed_at_ms"]) // 1000 == item.update.observed_at]
        if not mine:
            unmatched += 1
            continue
        checked += 1
        row = mine[-1]
        if (int(row["value"]), row["commitment"]) != (
            item.update.value,
            "0x" + item.update.model_commitment.hex(),
        ):
            mismatches.append(
                {
                    "block": item.block,
                    "round": item.round,
                    "feed_id": "0x" + item.update.feed_id.hex(),
                    "landed": [str(item.update.value), "0x" + item.update.model_commitment.hex()],
                    "node": [row["value"], row["commitment"]],
                }
            )
    return {"checked": checked, "mismatches": mismatches, "not_in_node_window": unmatched}
