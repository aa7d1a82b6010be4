"""The committee both RL benchmarks run (``mira bench rl`` and its real-data market): four
node processes on anvil with 1 s blocks, chain sources read one block deep, quick polls
and rounds."""

from __future__ import annotations

from typing import Any

from oracle.devnet.localnet import LocalNet
from oracle.progress import Progress

BLOCK_TIME_S = 1.0
CONFIRMATIONS = 1
NODES = 4
# the nodes' settings (LocalNet's keyword arguments)
SETTINGS: dict[str, Any] = {
    "poll_s": 0.1,
    "round_period_s": 0.25,
    "observe_timeout_s": 0.2,
    "transmit_timeout_s": 2.0,
}


def start(net: LocalNet, progress: Progress) -> None:
    """Deploy, start the node processes and wait for their key generation."""
    progress(f"deploying, starting {NODES} node processes, DKG over p2p")
    net.setup()
    net.start()
    net.wait_ready(timeout=180)
