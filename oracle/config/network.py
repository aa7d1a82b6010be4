"""The ``[network]`` table of ``node.toml``: how a node joins the oracle network.

Example::

    [network]
    listen_host = "127.0.0.1"
    listen_port = 7701                # the p2p URL registered on-chain must reach this
    rpc_url = "http://127.0.0.1:8545"
    oracle = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    keys_dir = "keys"                 # operator.json + identity.json (`mira keys new`)
    passphrase_file = "keys/passphrase"
    share_file = "keys/share.json"    # this node's FROST key share (from the DKG)
    round_period_s = 0.25
    transmit_timeout_s = 3.0
"""

from __future__ import annotations

from dataclasses import dataclass
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
    corrupt_signature_shares: bool  # fault injection for tests; never set in production


def read_network(t: Table, base: Path) -> NetworkConfig:
    passphrase = t.string("passphrase_file", None, max_len=500)
    oracle = t.string("oracle", max_len=42)
    if isinstance(oracle, str) and not (len(oracle) == 42 and oracle.startswith("0x")):
        t.fail("oracle", oracle, "expected a 0x-prefixed 20-byte contract address")
    rpc = t.string("rpc_url", max_len=2000)
    if isinstance(rpc, str) and not rpc.startswith(("http://", "https://")):
        t.fail("rpc_url", rpc, "expected an http(s) JSON-RPC URL")
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
        corrupt_signature_shares=t.boolean("corrupt_signature_shares", False),
    )
    t.finish()
    return cfg
