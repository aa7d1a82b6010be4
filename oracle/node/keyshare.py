"""A node's FROST key share at rest: the public key package in clear, the secret share
encrypted (ChaCha20-Poly1305) under a key derived from the node's identity key, with the
public part as associated data so neither can be swapped without detection."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from oracle.crypto.envelope import IdentityKey
from oracle.crypto.frost import KeyPackage, PublicKeyPackage
from oracle.crypto.group import Point
from oracle.errors import MiraError


class KeyShareError(MiraError):
    """The key share file is missing, unreadable or does not belong to this identity."""


def shares_dir(keys_dir: Path, chain_id: int, oracle: str) -> Path:
    """Where a node keeps the key shares of one oracle contract on one chain.

    Epoch and proposal numbers restart at 1 with every deployment, so a share named by them
    alone would be found again by a node pointed at another chain or contract (a devnet
    restarted in the same directory): it would load a share of another committee's key, or
    refuse one made under an older identity key, and wait in the key generation for ever.
    Named by chain id and contract address, key material is only ever looked up for the
    chain and contract it was made for.
    """
    return keys_dir / "shares" / f"chain-{chain_id}-{oracle.lower()}"


def share_file(directory: Path, epoch: int, proposal: int) -> Path:
    """The share of one committee proposal, in a :func:`shares_dir`."""
    return directory / f"epoch-{epoch}-proposal-{proposal}.json"


def _aead(identity: IdentityKey) -> ChaCha20Poly1305:
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"MIRA-keyshare-at-rest-v1"
    ).derive(identity.secret_bytes())
    return ChaCha20Poly1305(key)


def _public_doc(key: KeyPackage, public: PublicKeyPackage) -> dict[str, Any]:
    return {
        "version": 1,
        "identifier": key.identifier,
        "group_key": public.group_key.serialize().hex(),
        "threshold": public.threshold,
        "verifying_shares": {
            str(i): p.serialize().hex() for i, p in sorted(public.verifying_shares.items())
        },
    }


def save_share(
    path: Path, identity: IdentityKey, key: KeyPackage, public: PublicKeyPackage
) -> None:
    header = _public_doc(key, public)
    ad = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    nonce = secrets.token_bytes(12)
    ct = _aead(identity).encrypt(nonce, key.secret_share.to_bytes(32, "big"), ad)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({**header, "nonce": nonce.hex(), "ciphertext": ct.hex()}, fh, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def load_share(path: Path, identity: IdentityKey) -> tuple[KeyPackage, PublicKeyPackage]:
    try:
        doc = json.loads(path.read_text())
        header = {
            k: doc[k]
            for k in ("version", "identifier", "group_key", "threshold", "verifying_shares")
        }
        ad = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
        secret = _aead(identity).decrypt(
            bytes.fromhex(doc["nonce"]), bytes.fromhex(doc["ciphertext"]), ad
        )
        group_key = Point.deserialize(bytes.fromhex(header["group_key"]))
        public = PublicKeyPackage(
            group_key,
            {
                int(i): Point.deserialize(bytes.fromhex(p))
                for i, p in header["verifying_shares"].items()
            },
            int(header["threshold"]),
        )
        key = KeyPackage(
            int(header["identifier"]), int.from_bytes(secret, "big"), group_key, public.threshold
        )
    except FileNotFoundError:
        raise KeyShareError(f"no key share at {path}: run the DKG first") from None
    except InvalidTag:
        raise KeyShareError(f"{path} is not this node's key share (or was tampered with)") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise KeyShareError(f"cannot read key share {path}: {exc}") from None
    if public.verifying_shares.get(key.identifier) != key.verifying_share:
        raise KeyShareError(f"{path}: secret share does not match its verification share")
    return key, public
