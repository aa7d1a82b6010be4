"""The model commitment: a digest of a model's canonical state and its feed spec.

Two honest nodes that consumed the same observations in the same order hold models in
the same state, and must publish the same commitment, whatever their Python process,
dict insertion history or pickle protocol. So the state is walked and encoded
canonically, never pickled:

* floats as their IEEE-754 binary64 big-endian bytes (exact: no decimal round trip);
* ints in decimal, strings as UTF-8 with their length;
* dict keys in sorted order (by type, then value), whatever order they were inserted in;
* objects as their class's qualified name followed by their attributes in sorted order;
* random generators by their full state.

``commitment = sha256("MIRA-MODEL-v1" ‖ spec digest ‖ canonical state)``. sha256 is
used (not keccak) because the commitment is computed for every observation; on-chain
it is an opaque ``bytes32``.
"""

from __future__ import annotations

import collections
import datetime as _dt
import hashlib
import random
import struct
from collections.abc import Callable
from typing import Any

import numpy as np
from river import compose, linear_model, optim, preprocessing

from oracle.errors import MiraError

_DOMAIN = b"MIRA-MODEL-v1\x00"
_pack_d = struct.Struct(">d").pack


class CommitmentError(MiraError, TypeError):
    """The model state holds something with no canonical encoding."""


def commitment(spec_digest: bytes, model: Any) -> bytes:
    h = hashlib.sha256(_DOMAIN)
    h.update(spec_digest)
    steps = list(model.steps.values()) if isinstance(model, compose.Pipeline) else [model]
    for step in steps:
        fast = _FAST.get(type(step))
        h.update((fast and fast(step)) or canonical_state(step))
    return h.digest()


# Fast paths for the hot linear pipeline. They encode only what learning changes: the
# hyperparameters are already bound by the spec digest, which the spec names exactly.
# Each returns None when the instance is configured outside what it covers.


def _floats(keys: list[str], d: Any) -> bytes:
    return struct.pack(f">{len(keys)}d", *[d[k] for k in keys])


def _names(keys: list[str]) -> bytes:
    return b"%d:" % len(keys) + "\x00".join(keys).encode("utf-8") + b"\x00"


def _fast_standard_scaler(s: preprocessing.StandardScaler) -> bytes | None:
    if s.window_size is not None:
        return None
    counts = s.counts
    keys = sorted(counts)
    if len(s.means) != len(keys) or len(s.vars) != len(keys):
        return None  # unusual state: let the generic walk encode it
    return (
        b"FSS"
        + _names(keys)
        + b",".join(b"%d" % counts[k] for k in keys)
        + _floats(keys, s.means)
        + _floats(keys, s.vars)
    )


def _fast_linear_regression(m: linear_model.LinearRegression) -> bytes | None:
    opt = m.optimizer
    if type(opt) is not optim.SGD or type(opt.lr) is not optim.schedulers.Constant:
        return None
    if type(m.intercept_lr) is not optim.schedulers.Constant:
        return None
    weights = m._weights.to_dict()
    keys = sorted(weights)
    return (
        b"FLR"
        + _names(keys)
        + _floats(keys, weights)
        + _pack_d(m.intercept)
        + b"%d" % opt.n_iterations
    )


_FAST: dict[type, Callable[[Any], bytes | None]] = {
    preprocessing.StandardScaler: _fast_standard_scaler,
    linear_model.LinearRegression: _fast_linear_regression,
}


def canonical_state(obj: Any) -> bytes:
    out: list[bytes] = []
    _Encoder(out.append).encode(obj)
    return b"".join(out)


def _sort_key(key: Any) -> tuple[str, Any]:
    if isinstance(key, str | int | float | bool):
        return (type(key).__name__, key)
    if isinstance(key, tuple):
        return ("tuple", tuple(_sort_key(k) for k in key))
    raise CommitmentError(f"dict key of type {type(key).__name__} has no canonical order")


class _Encoder:
    """Walks an object graph. An object (a class instance) met again, e.g. a pipeline
    step reachable from two attributes, is written as a back-reference to the index of
    its first visit, so shared structure is encoded once; the walk order is canonical,
    so the references are too. Containers and scalars are always written out in full:
    their identity can differ between equal states (interning, unpickling)."""

    def __init__(self, emit: Callable[[bytes], Any]) -> None:
        self.emit = emit
        self.seen: dict[int, int] = {}
        self.keep: list[Any] = []  # keeps visited objects alive so ids stay unique

    def encode(self, obj: Any) -> None:
        emit = self.emit
        _encode = self.encode
        t = type(obj)
        if t is float:
            emit(b"f" + _pack_d(obj))
        elif t is str:
            b = obj.encode("utf-8")
            emit(b"s%d:" % len(b) + b)
        elif t is bool:
            emit(b"T" if obj else b"F")
        elif t is int:
            emit(b"i%d;" % obj)
        elif obj is None:
            emit(b"N")
        elif isinstance(obj, dict):
            emit(b"{%d:" % len(obj))
            for k in sorted(obj, key=_sort_key):
                _encode(k)
                _encode(obj[k])
            emit(b"}")
        elif isinstance(obj, set | frozenset):
            emit(b"S%d:" % len(obj))
            for item in sorted(obj, key=_sort_key):
                _encode(item)
            emit(b"]")
        elif isinstance(obj, list | tuple | collections.deque):
            emit(b"[%d:" % len(obj))
            for item in obj:
                _encode(item)
            emit(b"]")
        elif isinstance(obj, np.ndarray):
            arr = np.ascontiguousarray(obj)
            if arr.dtype.kind not in "biuf":
                raise CommitmentError(f"numpy array of dtype {arr.dtype} has no canonical encoding")
            arr = arr.astype(arr.dtype.newbyteorder(">"))
            emit(b"A" + arr.dtype.str.encode() + repr(arr.shape).encode() + arr.tobytes())
        elif isinstance(obj, np.floating):
            _encode(float(obj))
        elif isinstance(obj, np.integer | np.bool_):
            _encode(obj.item())
        elif isinstance(obj, random.Random):
            emit(b"R")
            _encode(obj.getstate())
        elif isinstance(obj, np.random.Generator):
            emit(b"G")
            _encode(obj.bit_generator.state)
        elif isinstance(obj, _dt.datetime | _dt.date):
            emit(b"D" + obj.isoformat().encode())
        elif t.__name__ == "VectorDict":  # river's Rust-backed sparse vector
            emit(b"V")
            _encode(obj.to_dict())
        elif (hasattr(obj, "__dict__") and not callable(obj)) or _is_river(t):
            ref = self.seen.get(id(obj))
            if ref is not None:
                emit(b"@%d;" % ref)
                return
            self.seen[id(obj)] = len(self.seen)
            self.keep.append(obj)
            emit(b"O" + f"{t.__module__}.{t.__qualname__}".encode() + b":")
            _encode(_attrs(obj))
        else:
            raise CommitmentError(
                f"{t.__module__}.{t.__qualname__} in the model state has no canonical encoding"
            )


def _is_river(t: type) -> bool:
    return t.__module__.startswith("river.")


def _attrs(obj: Any) -> dict[str, Any]:
    attrs: dict[str, Any] = dict(getattr(obj, "__dict__", {}))
    for cls in type(obj).__mro__:
        for slot in getattr(cls, "__slots__", ()):
            if slot not in ("__dict__", "__weakref__") and hasattr(obj, slot):
                attrs[slot] = getattr(obj, slot)
    return attrs
