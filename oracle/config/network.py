"""The ``[network]`` table of ``node.toml``: how a node joins the oracle network.

Example::

    [network]
    listen_host = "127.0.0.1"
    listen_port = 7701                # the p2p URL registered on-chain must reach this
    rpc_url = "http://127.0.0.1:8545"
    oracle = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    keys_dir = "keys"                 # operator.json + identity.json (`mira keys new`)
    passphrase_file = "keys/passphrase"
    share_file = "keys/share.json"    # optional: a key share provisioned by other means
                                      # (the DKG stores shares in keys_dir/shares/chain-ID-ORACLE/)
    round_period_s = 0.25
    transmit_timeout_s = 3.0
    dkg_phase_timeout_s = 30.0        # key generation: how long a DKG phase waits for members
    backup_rpc_urls = []              # more endpoints for the transaction manager's pool
    tx_poll_interval_s = 0.5          # the manager's job loop
    tx_confirmation_depth = 3
    tx_rpc_demote_s = 5.0             # a failing endpoint sits out this long, then is re-probed
    tx_rpc_health_interval_s = 2.0    # how often the manager probes its endpoints

    [network.peer_urls]               # optional: reach a member elsewhere than its
    "0x70997970C51812dc3A010C7d01b50e0d17dc79C8" = "http://10.0.0.2:7701"  # on-chain URL
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from oracle.config.reader import Table


@dataclass(frozen=True)
class NetworkConfig:
    listen_host: str
    listen_port: int
    rpc_url: str
    oracle: str
    keys_dir: Path
    passphrase_file: Path | None
    share_file: Path
    round_period_s: float
    observe_timeout_s: float
    transmit_timeout_s: float
    rpc_timeout_s: float
    # A DKG phase waits this long for every member; then round 1 goes on with t + f of them
    # and later phases treat a missing message as a fault (oracle.node.keygen).
    dkg_phase_timeout_s: float = 30.0
    backup_rpc_urls: tuple[str, ...] = ()
    tx_poll_interval_s: float = 0.5
    tx_confirmation_depth: int = 3
    # Short by default: with one RPC endpoint a demotion is an outage of the manager, so
    # a blip must not keep reports off the chain for long after the endpoint is back.
    tx_rpc_demote_s: float = 5.0
    tx_rpc_health_interval_s: float = 2.0
    # operator address (lower case) → p2p URL used instead of the one registered on-chain
    # (a member reached over a private network, a tunnel, a test proxy)
    peer_urls: dict[str, str] = field(default_factory=dict)
    # pull mode (docs/pull.md): the MiraPullVerifier each round's root is signed for (None:
    # no roots), and how many signed roots (each with its whole tree) the node keeps
    pull_verifier: str | None = None
    pull_retention: int = 64
    # each wave of a pull round's parts (every member's outputs, the leaves to every
    # member): ~14 parts each at 10,000 feeds
    pull_transfer_timeout_s: float = 1.0

    def peer_url(self, operator: str, registered: str) -> str:
        """Where to reach the member with this operator: local config first, then chain."""
        return self.peer_urls.get(operator.lower(), registered).rstrip("/")

    @property
    def rpc_urls(self) -> tuple[str, ...]:
        """The transaction manager's RPC pool: the primary first."""
        return (self.rpc_url, *self.backup_rpc_urls)


_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


def read_network(t: Table, base: Path) -> NetworkConfig:
    passphrase = t.string("passphrase_file", None, max_len=500)
    oracle = t.string("oracle", max_len=42)
    if isinstance(oracle, str) and not (len(oracle) == 42 and oracle.startswith("0x")):
        t.fail("oracle", oracle, "expected a 0x-prefixed 20-byte contract address")
    rpc = t.string("rpc_url", max_len=2000)
    if isinstance(rpc, str) and not rpc.startswith(("http://", "https://")):
        t.fail("rpc_url", rpc, "expected an http(s) JSON-RPC URL")
    backups = t.strings("backup_rpc_urls", [], max_items=16)
    for url in backups:
        if not url.startswith(("http://", "https://")) or len(url) > 2000:
            t.fail("backup_rpc_urls", url, "expected http(s) JSON-RPC URLs")
    if rpc in backups:
        t.fail("backup_rpc_urls", rpc, "expected URLs other than rpc_url")
    pull_verifier = t.string("pull_verifier", None, max_len=42)
    if pull_verifier is not None and not _ADDRESS.fullmatch(pull_verifier):
        t.fail("pull_verifier", pull_verifier, "expected a 0x-prefixed 20-byte contract address")
    peer_urls: dict[str, str] = {}
    peers = t.table("peer_urls", required=False)
    if peers is not None:
        if len(peers.data) > 255:
            t.fail("peer_urls", f"{len(peers.data)} entries", "expected at most 255 members")
        for operator, url in peers.data.items():
            if not _ADDRESS.fullmatch(operator):
                peers.fail(operator, url, "expected a member's 0x operator address as the key")
            elif not isinstance(url, str) or not url.startswith(("http://", "https://")):
                peers.fail(operator, url, "expected an http(s) p2p URL")
            elif len(url) > 2000:
                peers.fail(operator, url, "expected a URL of at most 2000 characters")
            else:
                peer_urls[operator.lower()] = url
    cfg = NetworkConfig(
        listen_host=t.string("listen_host", "127.0.0.1", max_len=255),
        listen_port=t.integer("listen_port", low=0, high=65535),
        rpc_url=rpc,
        oracle=oracle,
        keys_dir=base / t.string("keys_dir", "keys", max_len=500),
        passphrase_file=None if passphrase is None else base / passphrase,
        share_file=base / t.string("share_file", "keys/share.json", max_len=500),
        round_period_s=t.number("round_period_s", 0.25, low=0.05, high=60.0),
        observe_timeout_s=t.number("observe_timeout_s", 0.2, low=0.01, high=30.0),
        transmit_timeout_s=t.number("transmit_timeout_s", 3.0, low=0.1, high=600.0),
        rpc_timeout_s=t.number("rpc_timeout_s", 3.0, low=0.1, high=120.0),
        dkg_phase_timeout_s=t.number("dkg_phase_timeout_s", 30.0, low=0.5, high=3600.0),
        backup_rpc_urls=tuple(backups),
        tx_poll_interval_s=t.number("tx_poll_interval_s", 0.5, low=0.05, high=60.0),
        tx_confirmation_depth=t.integer("tx_confirmation_depth", 3, low=1, high=1000),
        tx_rpc_demote_s=t.number("tx_rpc_demote_s", 5.0, low=0.1, high=3600.0),
        tx_rpc_health_interval_s=t.number("tx_rpc_health_interval_s", 2.0, low=0.1, high=3600.0),
        peer_urls=peer_urls,
        pull_verifier=pull_verifier,
        pull_retention=t.integer("pull_retention", 64, low=1, high=1024),
        pull_transfer_timeout_s=t.number("pull_transfer_timeout_s", 1.0, low=0.05, high=60.0),
    )
    # Reports always go through the transaction manager (oracle.transmission: durable
    # queue, nonces, fee bumps, reorgs, RPC failover); the "direct" sender was removed.
    t.removed("transmitter", "reports always go through the transaction manager; delete the line")
    t.finish()
    return cfg
