"""A transaction-manager process for the crash tests (run as ``python -m``).

Enqueues ``--count`` probe records (idempotently: a restart enqueues the same keys and
gets the same ids), then ticks the manager and mines a block per tick until every
transmission is final. With ``--stop-at POINT --nth N`` it prints ``CHECKPOINT`` at the
N-th time the manager passes POINT ("signed": a transaction is stored, not broadcast;
"broadcast": a node has it, the database does not know yet) and waits there for the
test to SIGKILL it. The sender key comes from ``MIRA_TEST_SENDER_KEY``, not argv.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import urllib.request

from eth_account import Account
from eth_utils.crypto import keccak
from prometheus_client import CollectorRegistry

from oracle import artifacts
from oracle.storage import make_engine
from oracle.transmission import TransmissionManager, TxManagerConfig


def _mine(url: str) -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "evm_mine", "params": []}).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        resp.read()


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--schema")
    parser.add_argument("--rpc", required=True)
    parser.add_argument("--probe", required=True)
    parser.add_argument("--count", type=int, default=3)
    parser.add_argument("--stop-at")
    parser.add_argument("--nth", type=int, default=1)
    args = parser.parse_args()

    seen = 0

    def checkpoint(point: str, tid: int) -> None:
        nonlocal seen
        if point != args.stop_at:
            return
        seen += 1
        if seen == args.nth:
            print(f"CHECKPOINT {point} {tid}", flush=True)
            time.sleep(120)  # the test SIGKILLs us here

    engine = make_engine(args.db, schema=args.schema)
    probe_abi = artifacts.load("TransmissionProbe").abi
    manager = TransmissionManager(
        engine,
        Account.from_key(os.environ["MIRA_TEST_SENDER_KEY"]),
        TxManagerConfig(chain_id=31337, rpc_urls=(args.rpc,), confirmation_depth=2),
        registry=CollectorRegistry(),
        error_abis=[probe_abi],
        checkpoint=checkpoint,
    )
    ids = []
    for i in range(1, args.count + 1):
        key = bytes([i]) * 32
        data = keccak(text="record(bytes32)")[:4] + key
        ids.append(manager.enqueue(args.probe, data, key=key))
    await manager.start(run_loop=False)
    try:
        for _ in range(60):
            await manager.tick()
            fates = [manager.fate(i) for i in ids]
            if all(f.state.terminal for f in fates):
                report = [{"id": f.id, "state": f.state.value, "nonce": f.nonce} for f in fates]
                print("DONE " + json.dumps(report), flush=True)
                return 0
            _mine(args.rpc)
    finally:
        await manager.stop()
    print("UNFINISHED", flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
