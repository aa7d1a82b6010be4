"""A chain-events source's event, resolved against the contract ABIs of the forge build
(:mod:`oracle.artifacts`), never against an ABI a spec carries.

It lives with the feed-spec reader, not with the source (oracle.sources.chain_events), so that
a spec naming an unknown contract, event or field is refused when it is read, with the
other problems of the file, and config imports nothing above it.
"""

from __future__ import annotations

import json
from typing import Any

from eth_utils.abi import event_abi_to_log_topic

from oracle import artifacts
from oracle.errors import MiraError, ToolchainError

_INT_TYPES = tuple(f"int{n}" for n in range(8, 257, 8)) + tuple(
    f"uint{n}" for n in range(8, 257, 8)
)


class EventSpecError(MiraError, ValueError):
    """The spec names an event or field the contract's ABI does not have."""

    def __init__(self, key: str, value: Any, expected: str) -> None:
        self.key, self.value, self.expected = key, value, expected
        super().__init__(f"{key} = {value!r}: {expected}")


def resolve_event(contract: str, event: str, field_path: str) -> tuple[str, str, tuple[str, ...]]:
    """Find ``event`` in the ABI of ``contract`` (forge build) and check ``field_path``
    names an integer argument. Returns (event ABI as canonical JSON, topic0, path)."""

    try:
        abi = artifacts.load(contract).abi
    except ToolchainError as exc:
        raise EventSpecError(
            "contract", contract, f"expected a contract of the build: {exc}"
        ) from exc
    events = [e for e in abi if e.get("type") == "event"]
    matches = [e for e in events if e.get("name") == event]
    if not matches:
        names = ", ".join(sorted({str(e.get("name")) for e in events})) or "none"
        raise EventSpecError("event", event, f"expected an event of {contract} ({names})")
    if len(matches) > 1:
        raise EventSpecError("event", event, "expected an event name that is not overloaded")
    entry = matches[0]
    if entry.get("anonymous"):
        raise EventSpecError("event", event, "expected a non-anonymous event (topic0 filter)")
    parts = tuple(field_path.split("."))
    if not all(parts):
        raise EventSpecError("field", field_path, "expected dot-separated argument names")
    inputs: list[dict[str, Any]] = entry.get("inputs", [])
    typ = ""
    for depth, part in enumerate(parts):
        known = [str(i.get("name")) for i in inputs]
        found = next((i for i in inputs if i.get("name") == part), None)
        if found is None:
            where = ".".join(parts[:depth]) or event
            raise EventSpecError(
                "field", field_path, f"expected an argument of {where} ({', '.join(known)})"
            )
        if depth == 0 and found.get("indexed") and found.get("type") == "tuple":
            raise EventSpecError("field", field_path, "an indexed struct is only its hash")
        typ = str(found.get("type"))
        inputs = found.get("components", [])
    if typ not in _INT_TYPES:
        raise EventSpecError(
            "field", field_path, f"expected an integer (intN or uintN) field, it is a {typ}"
        )
    topic0 = "0x" + bytes(event_abi_to_log_topic(entry)).hex()  # type: ignore[arg-type]
    return json.dumps(entry, sort_keys=True, separators=(",", ":")), topic0, parts
