"""``mira model``: model specs and the on-chain model registry (ModelRegistry).

``register``    validate a spec locally, hash it and propose it (``--dry-run``: only the
                local half, nothing sent)
``approve``     the oracle's owner approves a version (the first registers the feeds)
``publish``     the author publishes a new version of the same feeds
``deactivate``  the author or the owner deactivates a model for good
``list``        the registry's models, their feeds and versions

Each reads the registry from a deployment manifest (``--manifest``, key ``model_registry``)
or from ``--rpc-url`` and ``--registry``, and prints one JSON object with ``--json``. A
transaction is simulated from the signer first: a refusal by the registry becomes one
``Error: …`` line saying why (exit 1) and nothing is signed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import click

from oracle.cli.options import (
    chain_target_options,
    emit,
    operator_sender,
    signer_options,
)
from oracle.errors import ChainError

if TYPE_CHECKING:
    from web3 import Web3
    from web3.contract import Contract

    from oracle.chain.registry import FeedDeclaration, RegistryRefusal
    from oracle.config.feeds import FeedSpec

URI_SCHEMES = ("file", "http", "https", "data")
LIST_LIMIT = 100


class _ChainFailures(click.Group):
    """A failure of the RPC or of web3 is one line and exit 1, like any ChainError."""

    def invoke(self, ctx: click.Context) -> Any:
        from web3.exceptions import Web3Exception

        try:
            return super().invoke(ctx)
        except (Web3Exception, OSError) as exc:  # requests' errors are OSErrors
            detail = str(exc).splitlines()[0][:300] if str(exc) else ""
            raise ChainError(f"{type(exc).__name__}: {detail}") from None


@click.group(cls=_ChainFailures)
def model() -> None:
    """Model specs and the on-chain model registry."""


# -- the registry a command talks to ---------------------------------------------------------


@dataclass
class Target:
    w3: Web3
    registry: Contract
    oracle: Contract
    names: dict[bytes, str]  # feed id → name, from a manifest


def _target(manifest: Path | None, rpc_url: str | None, registry: str | None) -> Target:
    from web3 import Web3

    from oracle.chain.deploy import at
    from oracle.chain.registry import registry_at
    from oracle.chain.system import Manifest

    names: dict[bytes, str] = {}
    if manifest is not None:
        m = Manifest.read(manifest)
        rpc_url, registry = rpc_url or m.rpc_url, registry or m.model_registry or None
        names = {bytes.fromhex(f["feed_id"][2:]): n for n, f in m.feeds.items()}
        if registry is None:
            raise ChainError(
                f"manifest {manifest} names no model_registry (deployed before it existed): "
                "pass --registry"
            )
    if rpc_url is None or registry is None:
        raise click.UsageError("pass --manifest, or both --rpc-url and --registry")
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
    if not w3.is_connected():
        raise ChainError(f"no JSON-RPC answer from {rpc_url}")
    contract = registry_at(w3, registry)
    oracle = at(w3, "MiraOracle", contract.functions.oracle().call())
    return Target(w3, contract, oracle, names)


_target_options = chain_target_options(
    "--registry",
    "ModelRegistry address (else the manifest's).",
    "Deployment manifest (mira deploy, mira devnet up): RPC URL, registry, feed names.",
)


def _refused(target: Target, refusal: RegistryRefusal) -> ChainError:
    """The registry's (or, through approve, the oracle's) custom error, in words."""
    from web3 import Web3

    from oracle.chain import registry as reg
    from oracle.transmission.revert import RevertDecoder

    decoder = RevertDecoder([target.registry.abi, target.oracle.abi])
    decoded = decoder.decode(refusal.data)
    if decoded is None:
        return ChainError(f"{refusal.what} would revert: {decoder.describe(refusal.data)}")
    name, a = decoded
    a = {k: Web3.to_checksum_address(v) if Web3.is_address(v) else v for k, v in a.items()}

    def owner() -> str:
        return str(target.oracle.functions.owner().call())

    def author() -> str:
        return str(target.registry.functions.modelOf(a["modelId"]).call()[0])

    feed = ""
    if "feedId" in a:
        fid = bytes(a["feedId"])
        feed = target.names.get(fid, "0x" + fid.hex())
    messages: dict[str, Callable[[], str]] = {
        "NotOracleOwner": lambda: (
            f"{a['caller']} is not the oracle's owner ({owner()}): only the owner approves; "
            "sign with the owner's key"
        ),
        "NotAuthor": lambda: (
            f"{a['caller']} is not the author of model {a['modelId']} ({author()}): only the "
            "author publishes; sign with the author's key"
        ),
        "NotAuthorOrOwner": lambda: (
            f"{a['caller']} is neither the author of model {a['modelId']} ({author()}) nor "
            f"the oracle's owner ({owner()})"
        ),
        "UnknownModel": lambda: (
            f"no model {a['modelId']} in registry {target.registry.address} "
            f"({target.registry.functions.modelCount().call()} models; see `mira model list`)"
        ),
        "UnknownVersion": lambda: f"model {a['modelId']} has no version {a['version']}",
        "ModelDeactivatedAlready": lambda: f"model {a['modelId']} is deactivated",
        "VersionNotNewer": lambda: (
            f"version {a['version']} of model {a['modelId']} is not after its approved "
            f"version {a['approved']}: versions are approved in increasing order"
        ),
        "FeedIdTaken": lambda: (
            f"feed {feed} is taken: registered on the oracle already, or declared by an "
            "approved model (`mira feed list`, `mira model list`)"
        ),
        "InvalidSpecHash": lambda: "the spec hash is zero",
        "InvalidSpecUri": lambda: (
            f"the spec URI is {a['length']} bytes: 1 to "
            f"{reg.bounds(target.registry).max_uri_length} are accepted"
        ),
        "InvalidFeedCount": lambda: (
            f"the spec declares {a['count']} feeds: 1 to "
            f"{reg.bounds(target.registry).max_feeds} are accepted"
        ),
        "InvalidFeedDeclaration": lambda: (
            f"feed {feed}: a zero id, or a description over "
            f"{reg.bounds(target.registry).max_description_length} bytes"
        ),
        "NotOwner": lambda: (
            f"the registry {target.registry.address} is not the oracle's feed registrar: the "
            "oracle's owner must call setFeedRegistrar with it"
        ),
    }
    make = messages.get(name)
    if make is None:
        return ChainError(f"{refusal.what} would revert: {decoder.describe(refusal.data)}")
    return ChainError(make())


def _spec(spec_path: Path) -> FeedSpec:
    """The spec, checked as a node checks it: read, validated, its model built."""
    from oracle.config import load_feed_spec
    from oracle.models import FeedModel

    spec = load_feed_spec(spec_path)  # ConfigError names the file, key, value, expectation
    FeedModel(spec)  # the model builds from the allowlist, as a node would build it
    return spec


def _check_uri(uri: str) -> str:
    scheme = urlsplit(uri).scheme
    if scheme not in URI_SCHEMES:
        raise click.BadParameter(
            f"{uri[:80]!r}: expected a file://, http(s):// or data: URI", param_hint="--uri"
        )
    return uri


_embed_option = click.option(
    "--embed",
    is_flag=True,
    help="Carry the spec itself on-chain as a data: URI (small specs; instead of --uri).",
)


def _spec_uri(spec_path: Path, uri: str | None, embed: bool) -> str:
    """--uri as given, or with --embed the data: URI of the spec file's bytes."""
    if embed == (uri is not None):
        raise click.UsageError("pass either --uri (where nodes fetch the spec) or --embed")
    if uri is None:
        from oracle.registry.fetch import data_uri

        return data_uri(spec_path.read_bytes())
    return _check_uri(uri)


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


def _declared(decls: list[FeedDeclaration]) -> list[dict[str, Any]]:
    return [
        {"feed_id": _hex(d.feed_id), "decimals": d.decimals, "description": d.description}
        for d in decls
    ]


# -- commands -------------------------------------------------------------------------------


@model.command("register")
@click.argument("spec_path", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--uri", default=None, help="Where nodes fetch the spec: file://, http(s)://, data:.")
@_embed_option
@click.option("--dry-run", is_flag=True, help="Validate and hash only; send nothing.")
@_target_options
@signer_options
def register(
    spec_path: Path,
    uri: str | None,
    embed: bool,
    dry_run: bool,
    as_json: bool,
    manifest: Path | None,
    rpc_url: str | None,
    registry: str | None,
    keys_dir: Path,
    passphrase_file: Path | None,
) -> None:
    """Validate SPEC (a feeds/*.toml file), hash it and propose it to the model registry.

    Prints the model id and the feed ids it declares. The signer becomes the model's
    author. The oracle's owner then approves it (mira model approve).
    """
    spec = _spec(spec_path)
    result: dict[str, Any] = {
        "spec": str(spec_path),
        "feed": spec.id,
        "version": spec.version,
        "feed_id_bytes32": _hex(spec.id_bytes32),
        "spec_hash": _hex(spec.digest),
        "model": [step.name for step in spec.model.steps] if spec.model else None,
        "output": spec.output_kind,
        **(
            {}
            if spec.output_kind not in ("policy", "values")
            else {
                # a policy's arms, or a values feed's fields: one on-chain feed each
                "arm_feeds" if spec.output_kind == "policy" else "field_feeds": {
                    o.arm: {"feed": o.id, "feed_id_bytes32": _hex(o.id_bytes32)}
                    for o in spec.outputs
                }
            }
        ),
    }
    if dry_run:
        result |= {"registered_on_chain": False, "note": "validated locally (--dry-run)"}
        if as_json:
            emit(result, True, [])
            return
        for key, value in result.items():
            click.echo(f"{key:>18}: {value}")
        return
    uri = _spec_uri(spec_path, uri, embed)
    from oracle.chain import registry as reg

    decls = reg.declarations(spec)
    target = _target(manifest, rpc_url, registry)
    sender = operator_sender(target.w3, keys_dir, passphrase_file)
    try:
        proposal = reg.propose(sender, target.registry, spec.digest, uri, decls)
    except reg.RegistryRefusal as refusal:
        raise _refused(target, refusal) from None
    result |= {
        "registered_on_chain": True,
        "registry": target.registry.address,
        "model_id": proposal.model_id,
        "author": sender.account.address,
        "spec_uri": uri,
        "feed_ids": [_hex(f) for f in proposal.feed_ids],
        "block": proposal.block_number,
        "tx_hash": _hex(proposal.tx_hash),
    }
    emit(
        result,
        as_json,
        [
            f"model {proposal.model_id} proposed (version 1, spec hash {_hex(spec.digest)})",
            *(f"  feed {o.id:<28} {_hex(o.id_bytes32)}" for o in spec.outputs),
            f"the oracle's owner approves it with: mira model approve {proposal.model_id}",
        ],
    )


@model.command("approve")
@click.argument("model_id", type=click.IntRange(min=1))
@click.option(
    "--version",
    "number",
    type=click.IntRange(min=1),
    default=None,
    help="Version to approve (default: the latest proposed).",
)
@_target_options
@signer_options
def approve(
    model_id: int,
    number: int | None,
    as_json: bool,
    manifest: Path | None,
    rpc_url: str | None,
    registry: str | None,
    keys_dir: Path,
    passphrase_file: Path | None,
) -> None:
    """The oracle's owner: approve a version of MODEL_ID (the first approval registers the
    model's feeds on the oracle, each with its AggregatorV3 proxy)."""
    from oracle.chain import registry as reg

    target = _target(manifest, rpc_url, registry)
    sender = operator_sender(target.w3, keys_dir, passphrase_file)
    try:
        if number is None:
            number = reg.model(target.registry, model_id).version_count
        first = reg.model(target.registry, model_id).approved_version == 0
        event = reg.approve(sender, target.registry, model_id, number)
        decls = reg.feeds(target.registry, model_id)
    except reg.RegistryRefusal as refusal:
        raise _refused(target, refusal) from None
    fns = target.oracle.functions
    registered = (
        [
            {**d, "proxy": fns.proxyOf(bytes.fromhex(d["feed_id"][2:])).call()}
            for d in _declared(decls)
        ]
        if first
        else []
    )
    emit(
        {
            "model_id": model_id,
            "version": number,
            "spec_hash": _hex(event.spec_hash),
            "block": event.ref.block_number,
            "tx_hash": _hex(event.ref.tx_hash),
            "registered_feeds": registered,
        },
        as_json,
        [
            f"model {model_id} version {number} approved in block {event.ref.block_number}",
            *(f"  feed {r['feed_id']} registered, proxy {r['proxy']}" for r in registered),
        ],
    )


@model.command("publish")
@click.argument("model_id", type=click.IntRange(min=1))
@click.argument("spec_path", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--uri", default=None, help="Where nodes fetch the spec: file://, http(s)://, data:.")
@_embed_option
@_target_options
@signer_options
def publish(
    model_id: int,
    spec_path: Path,
    uri: str | None,
    embed: bool,
    as_json: bool,
    manifest: Path | None,
    rpc_url: str | None,
    registry: str | None,
    keys_dir: Path,
    passphrase_file: Path | None,
) -> None:
    """The author: publish SPEC as the next version of MODEL_ID. It must declare the same
    feeds (ids and decimals) as the model."""
    from oracle.chain import registry as reg

    spec = _spec(spec_path)
    uri = _spec_uri(spec_path, uri, embed)
    target = _target(manifest, rpc_url, registry)
    try:
        declared = reg.feeds(target.registry, model_id)
    except reg.RegistryRefusal as refusal:
        raise _refused(target, refusal) from None
    mine = reg.declarations(spec)
    if [(d.feed_id, d.decimals) for d in mine] != [(d.feed_id, d.decimals) for d in declared]:
        had = ", ".join(f"{_hex(d.feed_id)} ({d.decimals} decimals)" for d in declared)
        has = ", ".join(f"{_hex(d.feed_id)} ({d.decimals} decimals)" for d in mine)
        raise click.ClickException(
            f"{spec_path} declares other feeds than model {model_id}: the model has [{had}], "
            f"the spec [{has}]; a new version keeps the model's feeds (propose a new model "
            "with mira model register for others)"
        )
    sender = operator_sender(target.w3, keys_dir, passphrase_file)
    try:
        event = reg.publish(sender, target.registry, model_id, spec.digest, uri)
    except reg.RegistryRefusal as refusal:
        raise _refused(target, refusal) from None
    emit(
        {
            "model_id": model_id,
            "version": event.version,
            "spec_hash": _hex(event.spec_hash),
            "spec_uri": event.spec_uri,
            "block": event.ref.block_number,
            "tx_hash": _hex(event.ref.tx_hash),
        },
        as_json,
        [
            f"model {model_id} version {event.version} published (spec hash "
            f"{_hex(event.spec_hash)})",
            f"the oracle's owner approves it with: mira model approve {model_id} "
            f"--version {event.version}",
        ],
    )


@model.command("deactivate")
@click.argument("model_id", type=click.IntRange(min=1))
@_target_options
@signer_options
def deactivate(
    model_id: int,
    as_json: bool,
    manifest: Path | None,
    rpc_url: str | None,
    registry: str | None,
    keys_dir: Path,
    passphrase_file: Path | None,
) -> None:
    """The author or the oracle's owner: deactivate MODEL_ID for good (its feeds stay
    registered and keep their last value)."""
    from oracle.chain import registry as reg

    target = _target(manifest, rpc_url, registry)
    sender = operator_sender(target.w3, keys_dir, passphrase_file)
    try:
        event = reg.deactivate(sender, target.registry, model_id)
    except reg.RegistryRefusal as refusal:
        raise _refused(target, refusal) from None
    emit(
        {
            "model_id": model_id,
            "by": event.by,
            "block": event.ref.block_number,
            "tx_hash": _hex(event.ref.tx_hash),
        },
        as_json,
        [f"model {model_id} deactivated by {event.by} in block {event.ref.block_number}"],
    )


@model.command("list")
@click.option(
    "--limit",
    type=click.IntRange(min=1, max=1000),
    default=LIST_LIMIT,
    show_default=True,
    help="Show at most this many models, the newest (anyone can propose: the list is open).",
)
@_target_options
def list_(
    limit: int,
    as_json: bool,
    manifest: Path | None,
    rpc_url: str | None,
    registry: str | None,
) -> None:
    """The registry's models: author, state, declared feeds, approved and latest version."""
    from oracle.chain import registry as reg

    target = _target(manifest, rpc_url, registry)
    count = reg.model_count(target.registry)
    rows: list[dict[str, Any]] = []
    for model_id in range(count, max(0, count - limit), -1):
        m = reg.model(target.registry, model_id)
        latest = reg.version(target.registry, model_id, m.version_count)
        approved = (
            reg.version(target.registry, model_id, m.approved_version)
            if m.approved_version
            else None
        )
        rows.append(
            {
                "model_id": model_id,
                "author": m.author,
                "state": "deactivated"
                if m.deactivated
                else ("approved" if m.approved_version else "proposed"),
                "version_count": m.version_count,
                "approved_version": m.approved_version,
                "approved_spec_hash": _hex(approved.spec_hash) if approved else None,
                "approved_block": approved.approved_block if approved else None,
                "latest_spec_hash": _hex(latest.spec_hash),
                "latest_spec_uri": latest.spec_uri,
                "deactivated_block": m.deactivated_block or None,
                "feeds": [
                    {**d, "name": target.names.get(bytes.fromhex(d["feed_id"][2:]))}
                    for d in _declared(reg.feeds(target.registry, model_id))
                ],
            }
        )
    rows.reverse()
    lines = [f"{count} models in registry {target.registry.address}"]
    for r in rows:
        lines.append(
            f"  {r['model_id']:>4} {r['state']:<11} v{r['approved_version']}/"
            f"{r['version_count']} by {r['author']}  feeds "
            + ", ".join(f["name"] or f["feed_id"] for f in r["feeds"])
        )
    emit(
        {"registry": target.registry.address, "model_count": count, "models": rows},
        as_json,
        lines,
    )
