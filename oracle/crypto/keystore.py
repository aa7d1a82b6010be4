"""A node's keys at rest: scrypt + ChaCha20-Poly1305, one JSON file per key.

A node holds two long-lived keys:

``operator``  secp256k1, signs the node's transactions; known by its Ethereum address.
``identity``  secp256k1, the node's p2p identity: signs and receives DKG envelopes
              (:mod:`oracle.crypto.envelope`); known by its compressed public key.

File format (``<kind>.json``, mode 0600)::

    {"version": 1, "kind": "operator", "public": {...},
     "kdf": {"name": "scrypt", "salt": hex, "n": 131072, "r": 8, "p": 1},
     "cipher": {"name": "chacha20-poly1305", "nonce": hex}, "ciphertext": hex}

The AEAD key is scrypt(passphrase, salt); the associated data is the canonical JSON of
every field but the ciphertext, so editing the public data or the parameters makes the
file undecryptable rather than misleading. The scrypt parameters are stored in each file,
so raising the default cost never locks out a key written under an older one.

The passphrase comes from a file or the ``MIRA_KEY_PASSPHRASE`` environment variable,
never from the command line. The environment is the weaker of the two (it is inherited by
child processes, readable in ``/proc/<pid>/environ`` by the same user, and often ends up
in shell history, container inspection output or crash reports), so reading it warns.
Secrets never appear in ``repr``, ``str``, logs or error messages.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import coincurve
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from oracle.crypto.envelope import IdentityKey
from oracle.crypto.errors import KeystoreError, ScalarOutOfRangeError, WrongPassphraseError

PASSPHRASE_ENV: Final = "MIRA_KEY_PASSPHRASE"  # noqa: S105 (a variable name, not a secret)
KEYS_DIR_ENV: Final = "MIRA_KEYS_DIR"
# scrypt cost: memory is 128·N·r bytes, so N = 2^17, r = 8 takes 128 MiB and about a second
# per unlock here. That is the current guidance for interactive logins (OWASP: N ≥ 2^17 with
# r = 8, p = 1); an unlock happens once per process start, so the cost is paid rarely by the
# node and on every guess by an attacker holding the file. Files keep their own parameters.
DEFAULT_SCRYPT_N: Final = 2**17
KeyKind = Literal["operator", "identity"]
KINDS: Final[tuple[KeyKind, ...]] = ("operator", "identity")


class PassphraseFromEnvironmentWarning(UserWarning):
    """The key passphrase was read from the environment rather than from a file."""


class OperatorKey:
    """The node's transaction key (secp256k1). Redacted repr."""

    __slots__ = ("_key",)

    def __init__(self, secret: bytes | None = None) -> None:
        try:
            self._key = coincurve.PrivateKey(secret)
        except ValueError as exc:
            raise ScalarOutOfRangeError("operator secret key is not a valid scalar") from exc

    @property
    def address(self) -> str:
        """EIP-55 checksummed Ethereum address."""
        pub = self._key.public_key.format(compressed=False)[1:]
        return str(to_checksum_address(keccak(pub)[-20:]))

    def secret_bytes(self) -> bytes:
        return bytes(self._key.secret)

    def __repr__(self) -> str:
        return f"OperatorKey(address={self.address}, secret=<redacted>)"

    __str__ = __repr__


def public_data(key: OperatorKey | IdentityKey) -> dict[str, str]:
    if isinstance(key, OperatorKey):
        return {"address": key.address}
    return {"public_key": key.public_bytes.hex()}


def read_passphrase(passphrase_file: Path | None, env: Mapping[str, str] | None = None) -> bytes:
    """The passphrase from ``passphrase_file`` (one trailing newline stripped) or the env."""
    environ = os.environ if env is None else env
    if passphrase_file is not None:
        try:
            raw = passphrase_file.read_bytes()
        except OSError as exc:
            raise KeystoreError(
                f"cannot read passphrase file {passphrase_file}: {exc.strerror}"
            ) from exc
        value = raw[:-1] if raw.endswith(b"\n") else raw
        value = value[:-1] if value.endswith(b"\r") else value
    elif environ.get(PASSPHRASE_ENV):
        value = environ[PASSPHRASE_ENV].encode()
        warnings.warn(
            f"the key passphrase comes from ${PASSPHRASE_ENV}: the environment is inherited "
            "by child processes and readable in /proc; prefer --passphrase-file "
            "(a file with mode 0600)",
            PassphraseFromEnvironmentWarning,
            stacklevel=2,
        )
    else:
        raise KeystoreError(f"no passphrase: pass --passphrase-file or set {PASSPHRASE_ENV}")
    if not value:
        raise KeystoreError("the passphrase is empty")
    return value


def _canonical(header: Mapping[str, Any]) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


def _kdf(passphrase: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase)


def encrypt_key(
    kind: KeyKind,
    key: OperatorKey | IdentityKey,
    passphrase: bytes,
    *,
    scrypt_n: int = DEFAULT_SCRYPT_N,
) -> dict[str, Any]:
    """The key file contents (a JSON-ready dict) for ``key`` under ``passphrase``."""
    salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
    header: dict[str, Any] = {
        "version": 1,
        "kind": kind,
        "public": public_data(key),
        "kdf": {"name": "scrypt", "salt": salt.hex(), "n": scrypt_n, "r": 8, "p": 1},
        "cipher": {"name": "chacha20-poly1305", "nonce": nonce.hex()},
    }
    aead = ChaCha20Poly1305(_kdf(passphrase, salt, scrypt_n, 8, 1))
    ciphertext = aead.encrypt(nonce, key.secret_bytes(), _canonical(header))
    return {**header, "ciphertext": ciphertext.hex()}


def decrypt_key(document: Mapping[str, Any], passphrase: bytes) -> OperatorKey | IdentityKey:
    """Decrypt a key file's contents; :class:`WrongPassphraseError` if it does not open."""
    try:
        header = {k: document[k] for k in ("version", "kind", "public", "kdf", "cipher")}
        kdf, cipher = header["kdf"], header["cipher"]
        if header["version"] != 1 or kdf["name"] != "scrypt":
            raise KeystoreError("unsupported key file version or KDF")
        if cipher["name"] != "chacha20-poly1305" or header["kind"] not in KINDS:
            raise KeystoreError("unsupported cipher or key kind")
        salt, nonce = bytes.fromhex(kdf["salt"]), bytes.fromhex(cipher["nonce"])
        n, r, p = int(kdf["n"]), int(kdf["r"]), int(kdf["p"])
        ciphertext = bytes.fromhex(document["ciphertext"])
    except (KeyError, TypeError, ValueError) as exc:
        raise KeystoreError(f"malformed key file: {type(exc).__name__}") from None
    if not 2**10 <= n <= 2**20 or n & (n - 1) or not 1 <= r <= 32 or not 1 <= p <= 16:
        raise KeystoreError("key file has implausible scrypt parameters")
    try:
        secret = ChaCha20Poly1305(_kdf(passphrase, salt, n, r, p)).decrypt(
            nonce, ciphertext, _canonical(header)
        )
    except InvalidTag:
        raise WrongPassphraseError("wrong passphrase, or the key file was modified") from None
    key: OperatorKey | IdentityKey = (
        OperatorKey(secret) if header["kind"] == "operator" else IdentityKey(secret)
    )
    if public_data(key) != header["public"]:
        raise KeystoreError("key file's public data does not match its secret")
    return key


@dataclass(frozen=True)
class KeyStore:
    """The key directory of one node: ``operator.json`` and ``identity.json``."""

    directory: Path
    scrypt_n: int = DEFAULT_SCRYPT_N

    def path(self, kind: KeyKind) -> Path:
        return self.directory / f"{kind}.json"

    def exists(self, kind: KeyKind) -> bool:
        return self.path(kind).exists()

    def read_document(self, kind: KeyKind) -> dict[str, Any]:
        path = self.path(kind)
        try:
            document: dict[str, Any] = json.loads(path.read_text())
        except FileNotFoundError:
            raise KeystoreError(
                f"no {kind} key in {self.directory} (run `mira keys new`)"
            ) from None
        except (OSError, ValueError) as exc:
            raise KeystoreError(f"cannot read key file {path}: {type(exc).__name__}") from None
        if document.get("kind") != kind:
            raise KeystoreError(f"{path} does not hold a {kind} key")
        return document

    def write_document(
        self, kind: KeyKind, document: Mapping[str, Any], *, overwrite: bool
    ) -> Path:
        path = self.path(kind)
        if path.exists() and not overwrite:
            raise KeystoreError(f"{path} exists; refusing to overwrite a key (use --force)")
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        # A fresh temporary name created with O_CREAT | O_EXCL, mode 0600 (mkstemp): a file
        # or symlink planted at a predictable name cannot receive the key or redirect the
        # write, and a leftover from a crash is never reused.
        fd, tmp_name = tempfile.mkstemp(dir=self.directory, prefix=f".{kind}.", suffix=".tmp")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(document, fh, indent=2, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return path

    def create(
        self, passphrase: bytes, *, overwrite: bool = False
    ) -> dict[KeyKind, dict[str, str]]:
        """Generate and store a fresh operator key and identity key."""
        for kind in KINDS:
            if self.exists(kind) and not overwrite:
                raise KeystoreError(
                    f"{self.path(kind)} exists; refusing to overwrite (use --force)"
                )
        keys: dict[KeyKind, OperatorKey | IdentityKey] = {
            "operator": OperatorKey(),
            "identity": IdentityKey(),
        }
        for kind, key in keys.items():
            document = encrypt_key(kind, key, passphrase, scrypt_n=self.scrypt_n)
            self.write_document(kind, document, overwrite=overwrite)
        return {kind: public_data(key) for kind, key in keys.items()}

    def public(self, kind: KeyKind) -> dict[str, str]:
        """The public data recorded in the file (authenticated only when decrypted)."""
        return dict(self.read_document(kind)["public"])

    def load(self, kind: KeyKind, passphrase: bytes) -> OperatorKey | IdentityKey:
        return decrypt_key(self.read_document(kind), passphrase)

    def load_operator(self, passphrase: bytes) -> OperatorKey:
        key = self.load("operator", passphrase)
        assert isinstance(key, OperatorKey)
        return key

    def load_identity(self, passphrase: bytes) -> IdentityKey:
        key = self.load("identity", passphrase)
        assert isinstance(key, IdentityKey)
        return key
