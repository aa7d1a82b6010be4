"""Why an eth_call reverted, in words: custom errors decoded from the ABIs we know."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from eth_abi.abi import decode
from eth_utils.crypto import keccak

from oracle.transmission.errors import JsonRpcError

_BUILTIN: list[dict[str, Any]] = [
    {"type": "error", "name": "Error", "inputs": [{"name": "message", "type": "string"}]},
    {"type": "error", "name": "Panic", "inputs": [{"name": "code", "type": "uint256"}]},
]


def _canonical(param: Mapping[str, Any]) -> str:
    kind = str(param["type"])
    if kind.startswith("tuple"):
        inner = ",".join(_canonical(c) for c in param.get("components", []))
        return f"({inner}){kind[len('tuple') :]}"
    return kind


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, tuple | list):
        return "(" + ", ".join(_show(v) for v in value) + ")"
    return str(value)


class RevertDecoder:
    """Selector → error ABI, from every ``"type": "error"`` entry of the given ABIs."""

    def __init__(self, abis: Iterable[Sequence[Mapping[str, Any]]] = ()) -> None:
        self._errors: dict[bytes, tuple[str, list[str], list[str]]] = {}
        for abi in [_BUILTIN, *abis]:
            for entry in abi:
                if entry.get("type") != "error":
                    continue
                types = [_canonical(p) for p in entry.get("inputs", [])]
                names = [str(p.get("name") or f"arg{i}") for i, p in enumerate(entry["inputs"])]
                selector = keccak(text=f"{entry['name']}({','.join(types)})")[:4]
                self._errors[selector] = (str(entry["name"]), types, names)

    def decode(self, data: bytes) -> tuple[str, dict[str, Any]] | None:
        """(error name, arguments by name) if the selector is known and the data decodes."""
        known = self._errors.get(data[:4])
        if known is None:
            return None
        name, types, names = known
        try:
            values = decode(types, data[4:])
        except Exception:
            return None
        return name, dict(zip(names, values, strict=True))

    def describe(self, data: bytes) -> str:
        """``Name(arg=value, …)`` if the selector is known, else the raw revert data."""
        if not data:
            return "reverted without data"
        known = self._errors.get(data[:4])
        if known is None:
            return f"unknown custom error 0x{data[:4].hex()} (data 0x{data.hex()})"
        decoded = self.decode(data)
        if decoded is None:  # malformed revert data is itself worth reporting
            return f"{known[0]}(<undecodable>) (data 0x{data.hex()})"
        name, args = decoded
        return f"{name}({', '.join(f'{n}={_show(v)}' for n, v in args.items())})"


def revert_of(exc: JsonRpcError) -> bytes | None:
    """The revert data of a JSON-RPC error if it is an execution revert, else None."""
    data = exc.data
    if isinstance(data, dict):
        data = data.get("data")
    is_revert = exc.code == 3 or "revert" in exc.message.lower()
    if not is_revert:
        return None
    if isinstance(data, str) and data.startswith("0x"):
        try:
            return bytes.fromhex(data[2:])
        except ValueError:
            return b""
    return b""
