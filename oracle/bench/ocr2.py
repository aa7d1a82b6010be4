"""Chainlink OCR2Base's transmit gas, measured in the same run as Mira's.

OCR2Reference (contracts/test/bench) is OCR2Base unchanged with a ``_report`` that stores one
int192. OCR2 checks f + 1 ECDSA signatures over keccak256(keccak256(report) ‖ reportContext),
so its cost grows with the committee; this measures it for n oracles and f = (n − 1) / 3.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_utils.crypto import keccak
from web3 import Web3

from oracle.chain.deploy import deploy
from oracle.crypto.dkg import max_faulty

SAMPLES = 5


def _measure_n(w3: Web3, n: int) -> int:
    f = max_faulty(n)
    contract = deploy(w3, "OCR2Reference")
    signers = [Account.create() for _ in range(n)]
    transmitters = [w3.eth.accounts[0]] + [Account.create().address for _ in range(n - 1)]
    tx = contract.functions.setConfig([s.address for s in signers], transmitters, f, b"", 1, b"")
    w3.eth.wait_for_transaction_receipt(tx.transact())
    config_digest = contract.functions.latestConfigDetails().call()[2]

    samples = []
    for round_ in range(1, SAMPLES + 1):
        report = abi_encode(["int192"], [3_000_00000000 + int.from_bytes(os.urandom(4), "big")])
        # epoch (4 bytes) ‖ round (1 byte) in the low bytes of the second context word
        context = [config_digest, (round_ << 0).to_bytes(32, "big"), keccak(b"extra")]
        digest = keccak(keccak(report) + b"".join(context))
        rs, ss, vs = [], [], bytearray(32)
        for i, signer in enumerate(signers[: f + 1]):
            sig = Account.unsafe_sign_hash(digest, signer.key)
            rs.append(sig.r.to_bytes(32, "big"))
            ss.append(sig.s.to_bytes(32, "big"))
            vs[i] = sig.v - 27
        sent = contract.functions.transmit(context, report, rs, ss, bytes(vs)).transact()
        receipt = w3.eth.wait_for_transaction_receipt(sent)
        if receipt["status"] != 1:
            raise RuntimeError(f"OCR2 transmit reverted at n={n}")
        samples.append(int(receipt["gasUsed"]))
    return int(statistics.median(samples))


def measure(w3: Web3, sizes: Sequence[int]) -> dict[str, Any]:
    """One-value OCR2 transmissions at each committee size in ``sizes``."""
    return {
        "contract": "OCR2Base (@chainlink/contracts 1.5.0) + one int192 store",
        "signatures_checked": "f + 1, f = (n - 1) // 3",
        "gas_by_committee_size": {str(n): _measure_n(w3, n) for n in sizes},
    }
