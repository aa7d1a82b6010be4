"""Options shared by commands that read a key directory: the oracle owner's
(``mira deploy``, ``mira committee propose|activate``) and ``mira keys``' passphrase."""

from __future__ import annotations

from pathlib import Path

import click

from oracle.crypto.keystore import KEYS_DIR_ENV

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
