"""``mira model register SPEC``: validate a model/feed spec and print its spec hash.

The on-chain model registry (spec hash + URI, inputs, output feed, owner, versions) does
not exist yet: this command does the local half only — every check a node makes before
it would run the spec, and the hash the registry will record. Nothing is sent anywhere.
"""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.group()
def model() -> None:
    """Model specs."""


@model.command("register")
@click.argument("spec_path", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
def register(spec_path: Path, as_json: bool) -> None:
    """Validate SPEC (a feeds/*.toml file) and print its spec hash.

    Only local validation and hashing: the on-chain model registry is not deployed yet,
    so nothing is registered on-chain.
    """
    from oracle.config import load_feed_spec
    from oracle.models import FeedModel

    spec = load_feed_spec(spec_path)  # ConfigError names the file, key, value, expectation
    FeedModel(spec)  # the model builds from the allowlist, as a node would build it
    result = {
        "spec": str(spec_path),
        "feed": spec.id,
        "version": spec.version,
        "feed_id_bytes32": "0x" + spec.id_bytes32.hex(),
        "spec_hash": "0x" + spec.digest.hex(),
        "model": [step.name for step in spec.model.steps] if spec.model else None,
        "output": spec.output_kind,
        **(
            {}
            if spec.output_kind != "policy"
            else {
                "arm_feeds": {
                    o.arm: {"feed": o.id, "feed_id_bytes32": "0x" + o.id_bytes32.hex()}
                    for o in spec.outputs
                }
            }
        ),
        "registered_on_chain": False,
        "note": "validated locally; the on-chain model registry does not exist yet",
    }
    if as_json:
        click.echo(json.dumps(result))
        return
    for key, value in result.items():
        click.echo(f"{key:>18}: {value}")
