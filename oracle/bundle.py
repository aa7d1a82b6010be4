"""Run-time files kept outside the Python sources: the contract artifacts (the output of
``forge build``, ``contracts/out``) and the demo feed specs (``feeds/``).

Each has one source in the repository. A wheel carries a copy of each under
``oracle/_bundle/`` (made by the build step in ``setup.py``, never committed); a source
checkout or an editable install has no bundle and reads the originals beside the package.
"""

from __future__ import annotations

import os
from pathlib import Path

BUNDLE = Path(__file__).resolve().parent / "_bundle"
CHECKOUT = Path(__file__).resolve().parents[1]  # the repository root, in a checkout

# name in the bundle -> the source it is copied from, relative to the repository root
ARTIFACTS = ("contracts", "contracts/out")
DEMO_FEEDS = ("feeds", "feeds")
CONTRACTS_DIR_ENV = "MIRA_CONTRACTS_DIR"


def locate(entry: tuple[str, str]) -> Path:
    """The bundled copy of ``entry`` if this is an installed wheel, else its source."""
    bundled, source = entry
    packaged = BUNDLE / bundled
    return packaged if packaged.is_dir() else CHECKOUT / source


def contracts_dir() -> Path:
    """The Foundry project: ``$MIRA_CONTRACTS_DIR`` or ``contracts/`` beside the package."""
    override = os.environ.get(CONTRACTS_DIR_ENV)
    if override:
        return Path(override).resolve()
    return CHECKOUT / "contracts"
