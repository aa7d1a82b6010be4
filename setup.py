"""The wheel's build step: bundle the run-time files that live outside ``oracle/``.

Everything else is declared in pyproject.toml. ``build_py`` copies into the wheel (under
``oracle/_bundle/``, see ``oracle/bundle.py``):

* ``contracts/``: the forge artifacts of the contracts in ``contracts/src`` (ABI and
  bytecode only), from ``contracts/out``, the one build of the contracts. A node needs the
  MiraOracle ABI; ``mira deploy`` and the devnet need the bytecode.
* ``feeds/``: the demo feed specs of ``feeds/`` (and ``feeds/rl/``, the RL loop's).

The copies are made from the checkout at build time and never committed, so the repository
keeps one source of each. Building a wheel without ``contracts/out`` fails, naming the step
that makes it (``make contracts``): a wheel whose node cannot read its contract is broken.
An editable install bundles nothing; it reads the originals beside the package.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
OUT = ROOT / "contracts" / "out"
SRC = ROOT / "contracts" / "src"
FEEDS = ROOT / "feeds"


def source_artifacts() -> list[Path]:
    """The artifacts compiled from ``contracts/src`` (not tests, scripts or libraries)."""
    found = []
    for path in sorted(OUT.glob("*.sol/*.json")):
        meta = json.loads(path.read_text()).get("metadata") or {}
        targets = meta.get("settings", {}).get("compilationTarget", {})
        if any(str(t).startswith("src/") for t in targets):
            found.append(path)
    return found


def slim(path: Path) -> str:
    """What ``oracle.artifacts`` reads: the ABI and both bytecodes."""
    raw = json.loads(path.read_text())
    return json.dumps(
        {
            "abi": raw["abi"],
            "bytecode": {"object": raw["bytecode"]["object"]},
            "deployedBytecode": {"object": raw["deployedBytecode"]["object"]},
        },
        sort_keys=True,
    )


class BuildWithBundle(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        bundle = Path(self.build_lib) / "oracle" / "_bundle"
        shutil.rmtree(bundle, ignore_errors=True)
        artifacts = source_artifacts() if OUT.is_dir() else []
        if not any(p.stem == "MiraOracle" for p in artifacts):
            raise SystemExit(
                f"no MiraOracle artifact under {OUT}: build the contracts first "
                "(`make contracts` runs `forge build`), then build the wheel"
            )
        for path in artifacts:
            dest = bundle / "contracts" / path.parent.name / path.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(slim(path))
        (bundle / "feeds").mkdir(parents=True)
        # feeds/*.toml are the devnet's demo feeds; feeds/rl/ the RL loop's real-data market
        for spec in sorted([*FEEDS.glob("*.toml"), *FEEDS.glob("rl/*.toml")]):
            dest = bundle / "feeds" / spec.relative_to(FEEDS)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(spec, dest)


setup(cmdclass={"build_py": BuildWithBundle})
