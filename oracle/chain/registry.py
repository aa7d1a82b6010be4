"""The ModelRegistry from Python: propose, publish, approve and deactivate models, and read
models, versions, declared feeds and the registry's events, typed.

The contract is ``contracts/src/ModelRegistry.sol`` (``IModelRegistry``); its ABI comes from
the forge build (:mod:`oracle.artifacts`). The read functions are what a node follows the
registry with; the writes are ``mira model``'s. A write is simulated from the sender first,
so a refusal by the contract is a :class:`RegistryRefusal` carrying the custom error's bytes
and nothing is signed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from eth_utils.crypto import keccak
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError, Web3Exception

from oracle.chain.deploy import at
from oracle.errors import ChainError

if TYPE_CHECKING:
    from oracle.chain.system import Sender
    from oracle.config.feeds import FeedSpec


class RegistryRefusal(ChainError):
    """The registry would revert the call: ``data`` is the revert data (a custom error of
    IModelRegistry, or of the oracle the registry calls), for the caller to put in words."""

    def __init__(self, what: str, data: bytes) -> None:
        super().__init__(f"{what} would revert (data 0x{data.hex()})")
        self.what, self.data = what, data


@dataclass(frozen=True)
class FeedDeclaration:
    """IModelRegistry.FeedDeclaration: one output feed a model declares."""

    feed_id: bytes  # 32 bytes
    decimals: int
    description: str

    def as_tuple(self) -> tuple[bytes, int, str]:
        return (self.feed_id, self.decimals, self.description)


@dataclass(frozen=True)
class Model:
    """IModelRegistry.Model, with its id. ``approved_version`` is 0 until the first approval."""

    model_id: int
    author: str
    version_count: int
    approved_version: int
    deactivated: bool
    deactivated_block: int


@dataclass(frozen=True)
class Version:
    """IModelRegistry.Version, with its model and number; ``approved_block`` 0 while not
    approved."""

    model_id: int
    version: int
    spec_hash: bytes
    spec_uri: str
    proposed_block: int
    approved_block: int


@dataclass(frozen=True)
class EventRef:
    """Where an event was logged: block, transaction and the log's index in the block (the
    order events happened in)."""

    block_number: int
    tx_hash: bytes
    log_index: int


@dataclass(frozen=True)
class ModelProposed:
    ref: EventRef
    model_id: int
    author: str
    spec_hash: bytes
    spec_uri: str
    feed_ids: tuple[bytes, ...]


@dataclass(frozen=True)
class VersionPublished:
    ref: EventRef
    model_id: int
    version: int
    spec_hash: bytes
    spec_uri: str


@dataclass(frozen=True)
class VersionApproved:
    ref: EventRef
    model_id: int
    version: int
    spec_hash: bytes


@dataclass(frozen=True)
class ModelDeactivated:
    ref: EventRef
    model_id: int
    by: str


RegistryEvent = ModelProposed | VersionPublished | VersionApproved | ModelDeactivated
_E = TypeVar("_E", ModelProposed, VersionPublished, VersionApproved, ModelDeactivated)


@dataclass(frozen=True)
class UndecodableLog:
    """A log of the registry's address that is none of its events, or does not decode as
    the one its first topic names: kept with the reason, never raised."""

    ref: EventRef
    reason: str


def declarations(spec: FeedSpec) -> list[FeedDeclaration]:
    """The feeds ``spec`` declares: one per published output (one per arm of a policy),
    with the spec's decimals and each output's description, as the oracle registers them
    (the same outputs as :func:`oracle.chain.system.feed_registrations`)."""
    return [FeedDeclaration(o.id_bytes32, spec.decimals, o.description) for o in spec.outputs]


@dataclass(frozen=True)
class Bounds:
    """ModelRegistry's MAX_FEEDS, MAX_URI_LENGTH and MAX_DESCRIPTION_LENGTH (bytes), read
    from the contract: the one place they are written down."""

    max_feeds: int
    max_uri_length: int
    max_description_length: int


def bounds(registry: Contract) -> Bounds:
    fns = registry.functions
    return Bounds(
        int(fns.MAX_FEEDS().call()),
        int(fns.MAX_URI_LENGTH().call()),
        int(fns.MAX_DESCRIPTION_LENGTH().call()),
    )


def check_declarations(feeds: Sequence[FeedDeclaration], spec_uri: str, limits: Bounds) -> None:
    """ChainError naming the bound a proposal would break (the contract's own checks, made
    before a transaction so the message can name the bound rather than a revert)."""
    if not 1 <= len(feeds) <= limits.max_feeds:
        raise ChainError(
            f"the spec declares {len(feeds)} feeds; the registry takes 1 to "
            f"{limits.max_feeds} a model"
        )
    uri_length = len(spec_uri.encode())
    if not 1 <= uri_length <= limits.max_uri_length:
        raise ChainError(
            f"the spec URI is {uri_length} bytes; the registry takes 1 to {limits.max_uri_length}"
        )
    for feed in feeds:
        length = len(feed.description.encode())
        if length > limits.max_description_length:
            raise ChainError(
                f"feed 0x{feed.feed_id.hex()}'s description is {length} bytes; the registry "
                f"takes at most {limits.max_description_length}"
            )
    ids = [f.feed_id for f in feeds]
    for feed_id in ids:
        if ids.count(feed_id) > 1:
            raise ChainError(f"feed 0x{feed_id.hex()} is declared twice")


def registry_at(w3: Web3, address: str) -> Contract:
    """The ModelRegistry at ``address``; ChainError if no contract is there."""
    contract = at(w3, "ModelRegistry", address)
    if not w3.eth.get_code(contract.address):
        raise ChainError(f"no contract at model registry address {contract.address}")
    return contract


# -- reads ---------------------------------------------------------------------------------


def model_count(registry: Contract) -> int:
    """How many models were proposed: ids 1 … model_count."""
    return int(registry.functions.modelCount().call())


def model(registry: Contract, model_id: int) -> Model:
    """Model ``model_id``; RegistryRefusal (UnknownModel) if there is none."""
    raw = _read(registry.functions.modelOf(model_id), f"reading model {model_id}")
    author, version_count, approved, deactivated, deactivated_block = raw
    return Model(
        model_id,
        Web3.to_checksum_address(author),
        int(version_count),
        int(approved),
        bool(deactivated),
        int(deactivated_block),
    )


def feeds(registry: Contract, model_id: int) -> list[FeedDeclaration]:
    """The feeds model ``model_id`` declares, in declaration order."""
    raw = _read(registry.functions.feedsOf(model_id), f"reading model {model_id}'s feeds")
    return [FeedDeclaration(bytes(f), int(d), str(s)) for f, d, s in raw]


def version(registry: Contract, model_id: int, number: int) -> Version:
    """Version ``number`` of model ``model_id``; RegistryRefusal if either is unknown."""
    raw = _read(
        registry.functions.versionOf(model_id, number),
        f"reading version {number} of model {model_id}",
    )
    spec_hash, spec_uri, proposed, approved = raw
    return Version(model_id, number, bytes(spec_hash), str(spec_uri), int(proposed), int(approved))


def model_of_feed(registry: Contract, feed_id: bytes) -> int:
    """The approved model that owns ``feed_id``; 0 if none."""
    return int(registry.functions.modelOfFeed(feed_id).call())


def events(
    registry: Contract, from_block: int, to_block: int
) -> list[RegistryEvent | UndecodableLog]:
    """The registry's logs in blocks [from_block, to_block], decoded, in chain order."""
    logs = registry.w3.eth.get_logs(
        {"address": registry.address, "fromBlock": from_block, "toBlock": to_block}
    )
    return [decode_log(registry, log) for log in logs]


def decode_log(registry: Contract, log: Mapping[str, Any]) -> RegistryEvent | UndecodableLog:
    """One log of the registry's address as its event, or UndecodableLog with the reason."""
    ref = EventRef(int(log["blockNumber"]), bytes(log["transactionHash"]), int(log["logIndex"]))
    topics = log.get("topics") or []
    name = _EVENT_NAMES.get(bytes(topics[0])) if topics else None
    if name is None:
        return UndecodableLog(ref, "not an event of IModelRegistry")
    try:
        args = getattr(registry.events, name)().process_log(log)["args"]
        return _event(name, ref, args)
    except (Web3Exception, ValueError, TypeError, KeyError) as exc:
        return UndecodableLog(ref, f"{name} does not decode: {type(exc).__name__}: {exc}")


def _event(name: str, ref: EventRef, a: Mapping[str, Any]) -> RegistryEvent:
    if name == "ModelProposed":
        return ModelProposed(
            ref,
            int(a["modelId"]),
            Web3.to_checksum_address(a["author"]),
            bytes(a["specHash"]),
            str(a["specUri"]),
            tuple(bytes(f) for f in a["feedIds"]),
        )
    if name == "VersionPublished":
        return VersionPublished(
            ref, int(a["modelId"]), int(a["version"]), bytes(a["specHash"]), str(a["specUri"])
        )
    if name == "VersionApproved":
        return VersionApproved(ref, int(a["modelId"]), int(a["version"]), bytes(a["specHash"]))
    return ModelDeactivated(ref, int(a["modelId"]), Web3.to_checksum_address(a["by"]))


_EVENT_NAMES = {
    keccak(text=signature): signature.split("(")[0]
    for signature in (
        "ModelProposed(uint256,address,bytes32,string,bytes32[])",
        "VersionPublished(uint256,uint256,bytes32,string)",
        "VersionApproved(uint256,uint256,bytes32)",
        "ModelDeactivated(uint256,address)",
    )
}


# -- writes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proposal:
    """What ``propose`` put on-chain: the model's id and the feed ids it declares."""

    model_id: int
    feed_ids: tuple[bytes, ...]
    tx_hash: bytes
    block_number: int


def propose(
    sender: Sender,
    registry: Contract,
    spec_hash: bytes,
    spec_uri: str,
    feeds: Sequence[FeedDeclaration],
) -> Proposal:
    """Propose a model (its version 1); the sender becomes its author."""
    check_declarations(feeds, spec_uri, bounds(registry))
    call = registry.functions.propose(spec_hash, spec_uri, [f.as_tuple() for f in feeds])
    receipt = _send(sender, call, "proposing the model")
    (event,) = _receipt_events(registry, receipt, ModelProposed)
    return Proposal(event.model_id, event.feed_ids, event.ref.tx_hash, event.ref.block_number)


def publish(
    sender: Sender, registry: Contract, model_id: int, spec_hash: bytes, spec_uri: str
) -> VersionPublished:
    """Author: publish the next version of ``model_id``."""
    call = registry.functions.publish(model_id, spec_hash, spec_uri)
    receipt = _send(sender, call, f"publishing a version of model {model_id}")
    (event,) = _receipt_events(registry, receipt, VersionPublished)
    return event


def approve(sender: Sender, registry: Contract, model_id: int, number: int) -> VersionApproved:
    """The oracle's owner: approve version ``number`` of ``model_id`` (the first approval
    registers the model's feeds on the oracle)."""
    call = registry.functions.approve(model_id, number)
    receipt = _send(sender, call, f"approving version {number} of model {model_id}")
    (event,) = _receipt_events(registry, receipt, VersionApproved)
    return event


def deactivate(sender: Sender, registry: Contract, model_id: int) -> ModelDeactivated:
    """The author or the oracle's owner: deactivate ``model_id`` for good."""
    call = registry.functions.deactivate(model_id)
    receipt = _send(sender, call, f"deactivating model {model_id}")
    (event,) = _receipt_events(registry, receipt, ModelDeactivated)
    return event


def _revert_data(exc: ContractLogicError) -> bytes:
    data = exc.data if isinstance(exc.data, str) else ""
    return bytes.fromhex(data[2:]) if data.startswith("0x") else b""


def _read(call: ContractFunction, what: str) -> Any:
    try:
        return call.call()
    except ContractLogicError as exc:  # ContractCustomError included
        raise RegistryRefusal(what, _revert_data(exc)) from None


def _send(sender: Sender, call: ContractFunction, what: str) -> dict[str, Any]:
    try:
        call.call({"from": sender.account.address})
    except ContractLogicError as exc:
        raise RegistryRefusal(what, _revert_data(exc)) from None
    return sender.send(call, what)


def _receipt_events(registry: Contract, receipt: Mapping[str, Any], kind: type[_E]) -> list[_E]:
    found = []
    for log in receipt["logs"]:
        if Web3.to_checksum_address(log["address"]) != registry.address:
            continue  # the oracle's FeedRegistered, in an approval
        event = decode_log(registry, log)
        if isinstance(event, kind):
            found.append(event)
    return found
