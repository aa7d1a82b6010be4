"""Keys at rest and ``mira keys`` through click's CliRunner."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner

from oracle.cli.main import cli
from oracle.crypto.envelope import IdentityKey
from oracle.crypto.errors import KeystoreError, WrongPassphraseError
from oracle.crypto.keystore import (
    DEFAULT_SCRYPT_N,
    KeyStore,
    OperatorKey,
    PassphraseFromEnvironmentWarning,
    decrypt_key,
    encrypt_key,
    read_passphrase,
)

FAST_N = 2**10  # scrypt cost for tests; the default (2**17) is exercised by the CLI tests


def test_round_trip_both_kinds(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys", scrypt_n=FAST_N)
    public = store.create(b"correct horse")
    operator = store.load_operator(b"correct horse")
    identity = store.load_identity(b"correct horse")
    assert operator.address == public["operator"]["address"]
    assert identity.public_bytes.hex() == public["identity"]["public_key"]
    assert (tmp_path / "keys" / "operator.json").stat().st_mode & 0o777 == 0o600
    with pytest.raises(KeystoreError):
        store.create(b"correct horse")  # never silently overwrites a key


def test_operator_address_matches_eth_account() -> None:
    from eth_account import Account

    key = OperatorKey()
    assert Account.from_key(key.secret_bytes()).address == key.address


def test_wrong_passphrase_and_tampering(tmp_path: Path) -> None:
    store = KeyStore(tmp_path, scrypt_n=FAST_N)
    store.create(b"pw")
    with pytest.raises(WrongPassphraseError) as info:
        store.load_operator(b"not pw")
    assert "pw" not in str(info.value).replace("passphrase", "")
    document = store.read_document("operator")
    document["public"]["address"] = OperatorKey().address  # lie about the public data
    with pytest.raises(WrongPassphraseError):
        decrypt_key(document, b"pw")
    document = store.read_document("identity")
    document["ciphertext"] = "00" + document["ciphertext"][2:]
    with pytest.raises(WrongPassphraseError):
        decrypt_key(document, b"pw")
    with pytest.raises(KeystoreError):
        decrypt_key({"kind": "operator"}, b"pw")
    with pytest.raises(KeystoreError):
        KeyStore(tmp_path / "empty").load_operator(b"pw")


def test_secrets_never_in_repr_or_file(tmp_path: Path) -> None:
    operator, identity = OperatorKey(), IdentityKey()
    for key in (operator, identity):
        secret = key.secret_bytes().hex()
        assert secret not in repr(key) and secret not in str(key)
        assert "redacted" in repr(key)
        document = encrypt_key(
            "operator" if key is operator else "identity", key, b"pw", scrypt_n=FAST_N
        )
        assert secret not in json.dumps(document)


def test_passphrase_sources(tmp_path: Path) -> None:
    f = tmp_path / "pp"
    f.write_bytes(b"from file\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a passphrase from a file is the quiet path
        assert read_passphrase(f, {}) == b"from file"
    with pytest.warns(PassphraseFromEnvironmentWarning, match="--passphrase-file"):
        assert read_passphrase(None, {"MIRA_KEY_PASSPHRASE": "from env"}) == b"from env"
    with pytest.raises(KeystoreError):
        read_passphrase(None, {})
    f.write_bytes(b"\n")
    with pytest.raises(KeystoreError):
        read_passphrase(f, {})


def test_keys_cli_new_show_export_import(tmp_path: Path) -> None:
    runner = CliRunner()
    keydir, other = tmp_path / "node", tmp_path / "restored"
    env = {"MIRA_KEY_PASSPHRASE": "s3cret passphrase", "MIRA_KEYS_DIR": str(keydir)}

    created = runner.invoke(cli, ["keys", "new"], env=env)
    assert created.exit_code == 0, created.output
    shown = runner.invoke(cli, ["keys", "show", "--json", "--verify"], env=env)
    assert shown.exit_code == 0, shown.output
    info = json.loads(shown.output)
    assert info["verified"] is True
    address = info["operator"]["address"]
    assert address in created.output

    operator = KeyStore(keydir).load_operator(b"s3cret passphrase")
    secret = operator.secret_bytes().hex()
    for result in (created, shown):
        assert secret not in result.output

    out = tmp_path / "operator-export.json"
    new_pp = tmp_path / "export-pp"
    new_pp.write_text("another passphrase\n")
    exported = runner.invoke(
        cli,
        [
            "keys",
            "export",
            "--kind",
            "operator",
            "--out",
            str(out),
            "--export-passphrase-file",
            str(new_pp),
        ],
        env=env,
    )
    assert exported.exit_code == 0, exported.output
    assert secret not in out.read_text() and secret not in exported.output

    imported = runner.invoke(
        cli,
        ["keys", "import", str(out), "--dir", str(other), "--import-passphrase-file", str(new_pp)],
        env={"MIRA_KEY_PASSPHRASE": "third passphrase"},
    )
    assert imported.exit_code == 0, imported.output
    restored = KeyStore(other).load_operator(b"third passphrase")
    assert restored.address == address

    # Wrong passphrase: one line, non-zero exit, no secret.
    wrong = runner.invoke(
        cli, ["keys", "show", "--verify"], env={**env, "MIRA_KEY_PASSPHRASE": "nope"}
    )
    assert wrong.exit_code == 1
    assert "wrong passphrase" in wrong.output and secret not in wrong.output
    # Re-import over an existing key is refused without --force.
    again = runner.invoke(
        cli,
        ["keys", "import", str(out), "--dir", str(other), "--import-passphrase-file", str(new_pp)],
        env={"MIRA_KEY_PASSPHRASE": "third passphrase"},
    )
    assert again.exit_code == 1 and "exists" in again.output
    assert KeyStore(other).load_operator(b"third passphrase").address == address


def test_default_scrypt_cost_follows_current_guidance_and_old_files_still_open(
    tmp_path: Path,
) -> None:
    assert DEFAULT_SCRYPT_N >= 2**17
    document = encrypt_key("operator", OperatorKey(), b"pw")
    assert document["kdf"] == {**document["kdf"], "n": DEFAULT_SCRYPT_N, "r": 8, "p": 1}
    # A file written under the previous default (2^15) keeps its parameters and still opens.
    old_key = OperatorKey()
    old = encrypt_key("operator", old_key, b"pw", scrypt_n=2**15)
    assert old["kdf"]["n"] == 2**15
    opened = decrypt_key(old, b"pw")
    assert isinstance(opened, OperatorKey) and opened.address == old_key.address


def test_write_never_follows_a_planted_temporary_file(tmp_path: Path) -> None:
    """A symlink at the temporary name an older version used must not receive the key."""
    keydir, victim = tmp_path / "keys", tmp_path / "victim"
    keydir.mkdir(mode=0o700)
    victim.write_text("untouched")
    for kind in ("operator", "identity"):
        os.symlink(victim, keydir / f"{kind}.tmp")
    store = KeyStore(keydir, scrypt_n=FAST_N)
    store.create(b"pw")
    assert victim.read_text() == "untouched"
    assert store.load_operator(b"pw").address == store.public("operator")["address"]
    leftovers = {p.name for p in keydir.iterdir()} - {"operator.json", "identity.json"}
    assert leftovers == {"operator.tmp", "identity.tmp"}  # the planted links, nothing new
    assert (keydir / "operator.json").stat().st_mode & 0o777 == 0o600
