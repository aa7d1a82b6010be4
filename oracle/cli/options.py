"""Options and parameter types shared by commands: the key directory of the oracle owner
(``mira deploy``, ``mira committee propose|activate``), ``mira keys``' passphrase, and the
chain's coordinates (an RPC URL, addresses) checked when the command line is parsed, so a
typo is a usage error naming the option rather than a failure deep in web3."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import click
from web3 import Web3

from oracle.crypto.keystore import KEYS_DIR_ENV

if TYPE_CHECKING:
    from oracle.chain.system import Sender

owner_keys_dir_option = click.option(
    "--keys-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar=KEYS_DIR_ENV,
    default=Path("~/.mira/keys").expanduser(),
    show_default=True,
    help=f"Key directory holding the oracle owner's operator key (or ${KEYS_DIR_ENV}).",
)
passphrase_file_option = click.option(
    "--passphrase-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="File holding the key passphrase (else $MIRA_KEY_PASSPHRASE).",
)


class AddressType(click.ParamType[str]):
    """An EVM address: 20 bytes in hex; a mixed-case one must carry a valid EIP-55
    checksum (a typo in a checksummed address is caught here, not on-chain)."""

    name = "ADDRESS"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if re.fullmatch(r"0x[0-9a-fA-F]{40}", text) is None:
            self.fail(f"{text!r} is not an address (0x and 40 hex digits)", param, ctx)
        digits = text[2:]
        mixed = digits != digits.lower() and digits != digits.upper()
        if mixed and text != Web3.to_checksum_address(text):
            self.fail(f"{text!r} has a bad EIP-55 checksum (a typo?)", param, ctx)
        return str(Web3.to_checksum_address(text))


class RpcUrlType(click.ParamType[str]):
    """A JSON-RPC endpoint over HTTP(S) (what the node, the CLI and web3 speak)."""

    name = "URL"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.fail(f"{text!r} is not an http(s):// JSON-RPC URL", param, ctx)
        return text


ADDRESS = AddressType()
RPC_URL = RpcUrlType()

rpc_url_option = click.option(
    "--rpc-url", type=RPC_URL, required=True, help="JSON-RPC URL of the chain."
)
oracle_option = click.option("--oracle", type=ADDRESS, required=True, help="MiraOracle address.")

json_option = click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON object on stdout instead (fields: docs/cli.md).",
)


def emit(data: dict[str, Any], as_json: bool, lines: list[str]) -> None:
    """The one way a command prints its result: ``data`` as one JSON object with
    ``--json``, else the human ``lines`` (which say the same)."""
    if as_json:
        click.echo(json.dumps(data, sort_keys=True))
        return
    for line in lines:
        click.echo(line)


def chain_target_options(
    contract: str, contract_help: str, manifest_help: str
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--manifest``, ``--rpc-url`` and the contract's address option (``contract``, e.g.
    ``--oracle``), each falling back to the manifest's, plus ``--json``: the options of a
    command that reads or writes one deployed contract."""

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        f = click.option(contract, type=ADDRESS, default=None, help=contract_help)(f)
        f = click.option(
            "--rpc-url", type=RPC_URL, default=None, help="JSON-RPC URL (else the manifest's)."
        )(f)
        f = click.option(
            "--manifest",
            type=click.Path(dir_okay=False, exists=True, path_type=Path),
            default=None,
            help=manifest_help,
        )(f)
        return json_option(f)

    return decorate


def signer_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--keys-dir`` and ``--passphrase-file``: whose operator key signs a transaction
    (read by :func:`operator_sender`)."""
    f = passphrase_file_option(f)
    return click.option(
        "--keys-dir",
        type=click.Path(file_okay=False, path_type=Path),
        envvar=KEYS_DIR_ENV,
        default=Path("~/.mira/keys").expanduser(),
        show_default=True,
        help=f"Key directory whose operator key signs (mira keys new; or ${KEYS_DIR_ENV}).",
    )(f)


def operator_sender(w3: Web3, keys_dir: Path, passphrase_file: Path | None) -> Sender:
    """A transaction sender signing with the operator key of ``keys_dir``."""
    from eth_account import Account

    from oracle.chain.system import Sender
    from oracle.crypto.keystore import KeyStore, read_passphrase

    operator = KeyStore(keys_dir).load_operator(read_passphrase(passphrase_file))
    return Sender(w3, Account.from_key(operator.secret_bytes()))
