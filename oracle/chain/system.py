"""Deploy Mira's contracts to a chain and describe where they live (the manifest).

Transactions are signed locally by the deployer's key and sent raw, so the same code
deploys to anvil and to a real L2 RPC. The deployer becomes the oracle's owner: it
registers feeds and starts committee epochs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction

from oracle import artifacts
from oracle.chain.deploy import at
from oracle.errors import ChainError

if TYPE_CHECKING:
    from oracle.config.feeds import FeedSpec


# MiraOracle's bounds on a feed's history depth (MIN_HISTORY_DEPTH, MAX_HISTORY_DEPTH).
MIN_HISTORY_DEPTH = 2
MAX_HISTORY_DEPTH = 127
DEFAULT_HISTORY_DEPTH = 61
TWAP_WINDOW_S = 3600


def history_depth(heartbeat_s: int) -> int:
    """Rounds a feed keeps on-chain: enough for a one-hour TWAP at its heartbeat.

    A feed updates at least once per heartbeat, so an hour holds at most ⌈3600 / heartbeat⌉
    heartbeat rounds; one more brackets the window's start. Deviation updates in between make
    the kept history cover less than an hour; MAX_HISTORY_DEPTH (the contract's bound) caps it.
    """
    if heartbeat_s <= 0:  # no heartbeat: the contract's default
        return DEFAULT_HISTORY_DEPTH
    rounds = -(-TWAP_WINDOW_S // heartbeat_s) + 1
    return max(MIN_HISTORY_DEPTH, min(MAX_HISTORY_DEPTH, rounds))


@dataclass(frozen=True)
class FeedRegistration:
    """What the owner registers for a feed: its spec id, fixed-point decimals, description,
    and how many rounds the contract keeps for ``getRoundData`` (:func:`history_depth`)."""

    id: str
    feed_id: bytes  # keccak256(utf8(id))
    decimals: int
    description: str
    history_depth: int = DEFAULT_HISTORY_DEPTH


def feed_registrations(specs: Sequence[FeedSpec]) -> list[FeedRegistration]:
    """What to register for ``specs``: one feed (and proxy) per published output, i.e.
    one per arm of a policy feed (see :func:`oracle.config.feeds.arm_feed_id`)."""
    return [
        FeedRegistration(
            out.id, out.id_bytes32, spec.decimals, out.description, history_depth(spec.heartbeat_s)
        )
        for spec in specs
        for out in spec.outputs
    ]


@dataclass(frozen=True)
class OracleParameters:
    """MiraOracle's constructor arguments (seconds)."""

    grace_period: int = 3600
    # Seconds between the owner scheduling a key installation outside the DKG, a grace period
    # change or a feed reset, and applying it (MiraOracle.changeDelay; at most 30 days).
    change_delay: int = 86400
    max_age: int = 3600
    max_future_drift: int = 300


@dataclass
class Manifest:
    """Where a deployment lives: written as JSON for nodes, tools and people."""

    rpc_url: str
    chain_id: int
    owner: str
    oracle: str
    deployed_at_block: int
    # The ModelRegistry, the oracle's feed registrar ("" in a manifest written before it).
    model_registry: str = ""
    # The MiraPullVerifier on this oracle's committee, which nodes sign pull roots for
    # ([network] pull_verifier; "" in a manifest written before it).
    pull_verifier: str = ""
    feeds: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")

    @classmethod
    def read(cls, path: Path) -> Manifest:
        try:
            raw = json.loads(path.read_text())
            return cls(**raw)
        except (OSError, ValueError, TypeError) as exc:
            raise ChainError(f"cannot read deployment manifest {path}: {exc}") from exc


class Sender:
    """Signs and sends transactions from one local key, waiting for each receipt."""

    def __init__(self, w3: Web3, account: LocalAccount) -> None:
        self.w3, self.account = w3, account
        self._nonce = int(w3.eth.get_transaction_count(account.address, "pending"))

    def send(
        self, call: ContractFunction | dict[str, Any], what: str, *, value: int = 0
    ) -> dict[str, Any]:
        # EIP-1559 fees with room for the base fee to double before inclusion
        priority = int(self.w3.eth.max_priority_fee)
        base = int(self.w3.eth.get_block("latest").get("baseFeePerGas", 0))
        tx: dict[str, Any] = {
            "from": self.account.address,
            "nonce": self._nonce,
            "chainId": self.w3.eth.chain_id,
            "maxPriorityFeePerGas": priority,
            "maxFeePerGas": 2 * base + priority,
            "value": value,
        }
        if isinstance(call, dict):
            tx.update(call)
        else:
            tx = dict(call.build_transaction(tx))  # type: ignore[arg-type]
        if "gas" not in tx:
            tx["gas"] = int(self.w3.eth.estimate_gas(tx) * 1.2)  # type: ignore[arg-type]
        signed = self.account.sign_transaction(tx)
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        self._nonce += 1
        receipt = dict(self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120))
        if receipt["status"] != 1:
            raise ChainError(f"{what} reverted (transaction 0x{bytes(tx_hash).hex()})")
        return receipt

    def deploy(self, name: str, *args: Any) -> Contract:
        art = artifacts.load(name)
        factory = self.w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
        data = factory.constructor(*args).data_in_transaction
        receipt = self.send({"data": data}, f"deploying {name}")
        return at(self.w3, name, receipt["contractAddress"])


def deploy_system(
    w3: Web3,
    deployer: LocalAccount,
    rpc_url: str,
    feeds: Sequence[FeedRegistration] = (),
    params: OracleParameters | None = None,
) -> Manifest:
    """Deploy MiraOracle owned by ``deployer`` and register ``feeds`` with their proxies;
    deploy the ModelRegistry beside it and make it the oracle's feed registrar, so approving
    a model registers its feeds; and the MiraPullVerifier of pull mode on the same
    committee (docs/pull.md), with the oracle's bound on future timestamps."""
    params = params or OracleParameters()
    ids = [f.id for f in feeds]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ChainError(f"feed {duplicates[0]!r} is listed twice; nothing was deployed")
    sender = Sender(w3, deployer)
    oracle = sender.deploy(
        "MiraOracle",
        deployer.address,
        params.grace_period,
        params.change_delay,
        params.max_age,
        params.max_future_drift,
    )
    registry = sender.deploy("ModelRegistry", oracle.address)
    verifier = sender.deploy("MiraPullVerifier", oracle.address, params.max_future_drift)
    sender.send(
        oracle.functions.setFeedRegistrar(registry.address),
        "making the model registry the registrar",
    )
    manifest = Manifest(
        rpc_url=rpc_url,
        chain_id=w3.eth.chain_id,
        owner=deployer.address,
        oracle=oracle.address,
        deployed_at_block=w3.eth.block_number,
        model_registry=registry.address,
        pull_verifier=verifier.address,
        extra={"oracle_parameters": asdict(params)},
    )
    for feed in feeds:
        register_feed(sender, oracle, feed, manifest)
    return manifest


def register_feed(
    sender: Sender, oracle: Contract, feed: FeedRegistration, manifest: Manifest
) -> None:
    """Register one feed and record its AggregatorV3Interface proxy in ``manifest``."""
    if feed.id in manifest.feeds:
        raise ChainError(f"feed {feed.id!r} is listed twice")
    sender.send(
        oracle.functions.registerFeed(
            feed.feed_id, feed.decimals, feed.description, feed.history_depth
        ),
        f"registering feed {feed.id!r}",
    )
    proxy = oracle.functions.proxyOf(feed.feed_id).call()
    manifest.feeds[feed.id] = {
        "feed_id": "0x" + feed.feed_id.hex(),
        "proxy": proxy,
        "decimals": feed.decimals,
        "description": feed.description,
        "history_depth": feed.history_depth,
    }
