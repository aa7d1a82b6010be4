"""A chain-events source's event, resolved against the contract ABIs of the forge build
(:mod:`oracle.artifacts`), never against an ABI a spec carries.

It lives with the feed-spec reader, not with the source (oracle.sources.chain_events), so that
a spec naming an unknown contract, event or field is refused when it is read, with the
other problems of the file, and config imports nothing above it.
"""

from __future__ import annotations

import json
import re
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
    abi, topic0, paths = resolve_event_fields(contract, event, {"": field_path})
    return abi, topic0, paths[0][1]


def resolve_event_fields(
    contract: str, event: str, fields: dict[str, str]
) -> tuple[str, str, tuple[tuple[str, tuple[str, ...]], ...]]:
    """Like :func:`resolve_event` for several fields of one event (record field name →
    path into the arguments; a path may index an integer array, e.g. ``context.0``).
    Returns (event ABI, topic0, ((name, path), ...) sorted by name). A bad path is reported
    under the key of its record field (``field`` for the single-field form)."""
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
    paths = []
    for name in sorted(fields):
        key = f"fields.{name}" if name else "field"  # "": resolve_event's single field
        paths.append((name, _resolve_path(entry, event, fields[name], key)))
    topic0 = "0x" + bytes(event_abi_to_log_topic(entry)).hex()  # type: ignore[arg-type]
    return json.dumps(entry, sort_keys=True, separators=(",", ":")), topic0, tuple(paths)


_ARRAY = re.compile(r"^(.+)\[(\d*)\]$")


def _resolve_path(entry: dict[str, Any], event: str, field_path: str, key: str) -> tuple[str, ...]:
    parts = tuple(field_path.split("."))
    if not all(parts):
        raise EventSpecError(key, field_path, "expected dot-separated argument names")
    inputs: list[dict[str, Any]] = entry.get("inputs", [])
    typ = ""
    depth = 0
    while depth < len(parts):
        part = parts[depth]
        known = [str(i.get("name")) for i in inputs]
        found = next((i for i in inputs if i.get("name") == part), None)
        if found is None:
            where = ".".join(parts[:depth]) or event
            raise EventSpecError(
                key, field_path, f"expected an argument of {where} ({', '.join(known)})"
            )
        if depth == 0 and found.get("indexed") and found.get("type") in ("tuple", "tuple[]"):
            raise EventSpecError(key, field_path, "an indexed struct is only its hash")
        typ = str(found.get("type"))
        inputs = found.get("components", [])
        top = depth == 0
        depth += 1
        array = _ARRAY.match(typ)
        if array is not None:
            # an array: the next part is the element's index
            if top and found.get("indexed"):
                raise EventSpecError(key, field_path, "an indexed array is only its hash")
            if depth >= len(parts) or not parts[depth].isdigit():
                raise EventSpecError(
                    key, field_path, f"expected an element index after {part} (a {typ})"
                )
            index = int(parts[depth])
            if array.group(2) and index >= int(array.group(2)):
                raise EventSpecError(key, field_path, f"expected an index below {array.group(2)}")
            typ = array.group(1)
            depth += 1
    if typ not in _INT_TYPES:
        raise EventSpecError(
            key, field_path, f"expected an integer (intN or uintN) field, it is a {typ}"
        )
    return parts
