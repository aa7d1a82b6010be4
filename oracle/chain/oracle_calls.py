"""Arguments of MiraOracle's calls, built from Python values: the glue between the report
codec, the FROST signer and the contract ABI (which itself comes from the forge build)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from eth_utils.address import to_checksum_address

from oracle.crypto.group import Point
from oracle.crypto.suites import MIRA_EVM


@dataclass(frozen=True)
class MemberInfo:
    """A committee member as ICommittee.Member stores it."""

    operator: str
    identity_key: bytes  # 33-byte compressed secp256k1 public key
    p2p_url: str

    def as_tuple(self) -> tuple[str, bytes, str]:
        return (to_checksum_address(self.operator), self.identity_key, self.p2p_url)

    @classmethod
    def from_chain(cls, raw: Sequence[Any]) -> MemberInfo:
        """A member as web3 returns ICommittee.Member: (operator, identityKey, p2pUrl)."""
        operator, identity_key, p2p_url = raw
        return cls(str(operator), bytes(identity_key), str(p2p_url))


class SignatureStruct(NamedTuple):
    """IMiraOracle.Signature, fields in the contract's order (web3 encodes it as a tuple)."""

    px: int
    z: int
    commitment: str
    parity: int


def signature_struct(group_key: Point, digest: bytes, encoded_signature: bytes) -> SignatureStruct:
    """IMiraOracle.Signature for an EVM-suite FROST signature over ``digest``."""
    px, parity, _, commitment, z = MIRA_EVM.evm_arguments(group_key, digest, encoded_signature)
    return SignatureStruct(px=px, z=z, commitment=to_checksum_address(commitment), parity=parity)


def start_epoch_args(
    group_key: Point, threshold: int, members: Sequence[MemberInfo]
) -> tuple[int, int, int, list[tuple[str, bytes, str]]]:
    """Arguments of ICommittee.startEpoch (the first epoch) and ICommittee.scheduleEpochStart
    (a later one, applied by executeEpochStart after the oracle's changeDelay) for a DKG's
    group key and the committee."""
    return (group_key.x, group_key.parity, threshold, [m.as_tuple() for m in members])
