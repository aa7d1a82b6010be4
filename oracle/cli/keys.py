"""``mira keys``: a node's operator key (transactions) and identity key (p2p).

Keys live encrypted in a key directory (``--dir``, or ``MIRA_KEYS_DIR``, default
``~/.mira/keys``). The passphrase comes from ``--passphrase-file`` or the
``MIRA_KEY_PASSPHRASE`` environment variable — never from an argument, which would land
in the shell history and the process list. ``show`` prints public data only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from oracle.cli.options import emit, json_option, passphrase_file_option
from oracle.crypto.errors import KeystoreError
from oracle.crypto.keystore import (
    KEYS_DIR_ENV,
    KINDS,
    KeyKind,
    KeyStore,
    decrypt_key,
    encrypt_key,
    public_data,
    read_passphrase,
)

_dir_option = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    envvar=KEYS_DIR_ENV,
    default=Path("~/.mira/keys").expanduser(),
    show_default=True,
    help=f"Key directory (or ${KEYS_DIR_ENV}).",
)
_kind_option = click.option(
    "--kind", type=click.Choice(KINDS), default="operator", show_default=True
)


@click.group()
def keys() -> None:
    """Create, inspect, export and import this node's keys."""


@keys.command("new")
@_dir_option
@passphrase_file_option
@click.option("--force", is_flag=True, help="Overwrite existing keys (they are lost).")
@json_option
def new(directory: Path, passphrase_file: Path | None, force: bool, as_json: bool) -> None:
    """Generate an operator key and an identity key, encrypted at rest."""
    store = KeyStore(directory)
    public = store.create(read_passphrase(passphrase_file), overwrite=force)
    emit(
        {"operator": public["operator"], "identity": public["identity"], "dir": str(directory)},
        as_json,
        [
            f"operator address:  {public['operator']['address']}",
            f"identity key:      {public['identity']['public_key']}",
            f"written to {directory}",
        ],
    )


@keys.command("show")
@_dir_option
@json_option
@click.option(
    "--verify/--no-verify",
    default=False,
    help="Decrypt the keys (passphrase needed) to check the public data.",
)
@click.option(
    "--member-url",
    default=None,
    metavar="URL",
    help="Print this node's entry of a committee members file instead, with URL as the "
    "p2p URL peers reach it at (for `mira committee propose --members-file`).",
)
@passphrase_file_option
def show(
    directory: Path,
    as_json: bool,
    verify: bool,
    member_url: str | None,
    passphrase_file: Path | None,
) -> None:
    """Print the public data: operator address and identity public key. Never secrets."""
    if member_url is not None and (
        not member_url.startswith(("http://", "https://")) or len(member_url) > 2000
    ):
        raise click.BadParameter(f"{member_url!r} is not an http(s) URL", param_hint="--member-url")
    store = KeyStore(directory)
    info: dict[str, Any] = {kind: store.public(kind) for kind in KINDS}
    if verify:
        passphrase = read_passphrase(passphrase_file)
        for kind in KINDS:
            if public_data(store.load(kind, passphrase)) != info[kind]:
                raise KeystoreError(f"{kind} key: public data does not match")
        info["verified"] = True
    if member_url is not None:
        entry = {
            "operator": info["operator"]["address"],
            "identity_key": info["identity"]["public_key"],
            "p2p_url": member_url,
        }
        click.echo(json.dumps(entry))
        return
    if as_json:
        click.echo(json.dumps(info, sort_keys=True))
        return
    click.echo(f"operator address:  {info['operator']['address']}")
    click.echo(f"identity key:      {info['identity']['public_key']}")
    if verify:
        click.echo("verified: both keys decrypt and match")


@keys.command("export")
@_dir_option
@passphrase_file_option
@_kind_option
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Destination of the encrypted key file.",
)
@click.option(
    "--export-passphrase-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Encrypt the export under this passphrase instead of the store's.",
)
@json_option
def export(
    directory: Path,
    passphrase_file: Path | None,
    kind: KeyKind,
    out: Path,
    export_passphrase_file: Path | None,
    as_json: bool,
) -> None:
    """Write one key, re-encrypted with a fresh salt, to an encrypted file."""
    store = KeyStore(directory)
    passphrase = read_passphrase(passphrase_file)
    key = store.load(kind, passphrase)
    target = read_passphrase(export_passphrase_file) if export_passphrase_file else passphrase
    document = encrypt_key(kind, key, target, scrypt_n=store.scrypt_n)
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeystoreError(f"{out} exists; refusing to overwrite") from None
    except OSError as exc:
        raise KeystoreError(f"cannot write {out}: {exc.strerror}") from None
    with os.fdopen(fd, "w") as fh:
        json.dump(document, fh, indent=2, sort_keys=True)
    public = public_data(key)
    emit(
        {"kind": kind, "public": public, "file": str(out)},
        as_json,
        [f"exported {kind} key {json.dumps(public)} to {out}"],
    )


@keys.command("import")
@click.argument("source", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@_dir_option
@passphrase_file_option
@click.option(
    "--import-passphrase-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Passphrase of SOURCE if it differs from the store's.",
)
@click.option("--force", is_flag=True, help="Replace an existing key of the same kind.")
@json_option
def import_(
    source: Path,
    directory: Path,
    passphrase_file: Path | None,
    import_passphrase_file: Path | None,
    force: bool,
    as_json: bool,
) -> None:
    """Import an exported key file into the key directory."""
    try:
        document = json.loads(source.read_text())
    except (OSError, ValueError) as exc:
        raise KeystoreError(f"cannot read {source}: {type(exc).__name__}") from None
    passphrase = read_passphrase(passphrase_file)
    source_passphrase = (
        read_passphrase(import_passphrase_file) if import_passphrase_file else passphrase
    )
    key = decrypt_key(document, source_passphrase)
    kind: KeyKind = document["kind"]
    store = KeyStore(directory)
    store.write_document(
        kind, encrypt_key(kind, key, passphrase, scrypt_n=store.scrypt_n), overwrite=force
    )
    public = public_data(key)
    emit(
        {"kind": kind, "public": public, "dir": str(directory)},
        as_json,
        [f"imported {kind} key {json.dumps(public)} into {directory}"],
    )
