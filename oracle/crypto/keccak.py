"""keccak256 for the hot paths: straight into C (safe-pysha3).

A pull root over 10,000 feeds hashes ~20,000 leaves and nodes a round, and every p2p
message (up to 64 KiB) is hashed once to sign it and once to check it; eth-hash's Python
layers around the same C code cost ~4x the hash itself on the small inputs. The rest of
the code, hashing a few values now and then (function selectors, keys), uses eth-utils.
Loops that hash thousands of values call ``keccak_256(data).digest()`` themselves: one
Python call less per hash is a tenth of a tree's cost.
"""

from __future__ import annotations

from sha3 import keccak_256

__all__ = ["keccak", "keccak_256"]


def keccak(data: bytes) -> bytes:
    """keccak256 of ``data`` (Ethereum's, not NIST SHA3-256)."""
    return keccak_256(data).digest()  # type: ignore[no-any-return]
