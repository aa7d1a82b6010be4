"""The model commitment: a digest of a model's canonical state and its feed spec.

Two honest nodes that consumed the same observations in the same order hold models in
the same state, and must publish the same commitment, whatever their Python process,
dict insertion history or pickle protocol. So the state is walked and encoded
canonically, never pickled:

* floats as their IEEE-754 binary64 big-endian bytes (exact: no decimal round trip);
* ints in decimal, strings as UTF-8 with their length;
* dict keys in sorted order (by type, then value), whatever order they were inserted in;
* objects as their class's qualified name followed by their attributes in sorted order;
* river's Rust-backed objects (e.g. the state inside ``stats.EWMean``), which have no
  Python attributes, by the bytes of their own serialization (``__getstate__``);
* random generators by their full state.

``commitment = sha256("MIRA-MODEL-v1" ‖ spec digest ‖ canonical state)``. sha256 is
used (not keccak) because the commitment is computed for every observation; on-chain
it is an opaque ``bytes32``.
"""

from __future__ import annotations

import collections
import datetime as _dt
import hashlib
import operator
import random
import struct
import weakref
from collections.abc import Callable
from itertools import chain
from typing import Any

import numpy as np
from river import anomaly, compose, linear_model, optim, preprocessing
from river.tree.padded import PaddedBranch, PaddedLeaf

from oracle.errors import MiraError

_DOMAIN = b"MIRA-MODEL-v1\x00"
_pack_d = struct.Struct(">d").pack


class CommitmentError(MiraError, TypeError):
    """The model state holds something with no canonical encoding."""


def commitment(spec_digest: bytes, model: Any) -> bytes:
    h = hashlib.sha256(_DOMAIN)
    h.update(spec_digest)
    steps = model.steps.values() if isinstance(model, compose.Pipeline) else (model,)
    for step in steps:
        fast = _FAST.get(type(step))
        h.update((fast and fast(step)) or canonical_state(step))
    return h.digest()


# What a capture gives: the commitment itself, or what it is made of (the hash state after
# the bytes that never change, and the rest of the bytes) when that is cheaper to hash later
# (see capturer)
Snapshot = bytes | tuple[Any, bytes]


def committer(spec_digest: bytes, model: Any) -> Callable[[], bytes]:
    """``commitment(spec_digest, model)`` as a function of no arguments, for a model
    whose steps stay the same objects (they learn in place): the steps and their
    encoders are looked up, and the domain and spec digest hashed, once."""
    capture = capturer(spec_digest, model)
    return lambda: digest_of(capture())


def capturer(spec_digest: bytes, model: Any) -> Callable[[], Snapshot]:
    """The committer in two halves: ``capture()`` reads what the commitment covers of
    the model's state now (the state may change right after), :func:`digest_of` makes
    the commitment from it, at any time later. ``digest_of(capture())`` is the
    committer's bytes.

    Why two: a batch of observations runs the model over all of them, capturing after
    each, and hashes the captures together afterwards (oracle.models.runner.FeedModel.
    finish). The same work, done as two tight loops instead of one interleaved loop,
    costs the node's pipeline ~15 % less CPU: each loop's code and data stay in the
    caches (docs/benchmarks.md "Session 19"). For StandardScaler |
    LinearRegression a capture is the packed floats and the counts (the values are
    copied out: nothing refers to the model); any other model's capture is its
    commitment, made there and then."""
    prefix = hashlib.sha256(_DOMAIN)
    prefix.update(spec_digest)
    steps = list(model.steps.values()) if isinstance(model, compose.Pipeline) else [model]
    encoders = [(_FAST.get(type(step)), step) for step in steps]
    generic = _step_by_step(prefix, encoders)
    return _scaler_regression_capture(prefix, steps, generic) or generic


def digest_of(snapshot: Snapshot) -> bytes:
    """The commitment a :func:`capturer`'s capture stands for."""
    if isinstance(snapshot, bytes):
        return snapshot
    head, rest = snapshot
    h = head.copy()
    h.update(rest)
    digest: bytes = h.digest()
    return digest


def _step_by_step(
    prefix: Any, encoders: list[tuple[Callable[[Any], bytes | None] | None, Any]]
) -> Callable[[], bytes]:
    def commit() -> bytes:
        h = prefix.copy()
        for fast, step in encoders:
            h.update((fast and fast(step)) or canonical_state(step))
        digest: bytes = h.digest()
        return digest

    return commit


def _scaler_regression_capture(
    prefix: Any, steps: list[Any], generic: Callable[[], bytes]
) -> Callable[[], Snapshot] | None:
    """For ``StandardScaler | LinearRegression`` (the common linear feed): the bytes
    :func:`_fast_standard_scaler` followed by :func:`_fast_linear_regression` give, made
    with one ``struct`` pack and one bytes format per call instead of two encoders' key
    lookups, packs and joins (the commitment is computed for every output). Whenever
    the state is not what both fast paths cover (no weights before the first learn, the
    weights' keys not the scaler's, a rolling scaler, another optimizer or schedule, a
    value ``struct`` or ``%d`` refuses, the scaler's state in other mapping types than
    river's) it defers to ``generic``, the step-by-step encoding, so the bytes are always
    theirs. A capture makes every byte after the hash state it starts from: what is left
    for :func:`digest_of` (hashing them) cannot fail."""
    if len(steps) != 2:
        return None
    scaler, reg = steps
    if type(scaler) is not preprocessing.StandardScaler:
        return None
    if type(reg) is not linear_model.LinearRegression:
        return None
    SGD, Constant = optim.SGD, optim.schedulers.Constant
    Counter, defaultdict = collections.Counter, collections.defaultdict
    # The encoding of the current key set (a feed's keys never change), built once and
    # swapped as one tuple so a call never mixes two key sets' parts:
    # (n, the getter of the values in sorted key order, the hash state after
    # prefix ‖ b"FSS" ‖ names, the format of counts | floats | n_iterations, the packer,
    # b"FLR" ‖ names). n = -1 before the first: no dict has -1 keys.
    Layout = tuple[int, Callable[[Any], tuple[Any, ...]], Any, bytes, Callable[..., bytes], bytes]
    layout: Layout = (-1, tuple, prefix, b"", _pack_d, b"")

    def build(counts: dict[Any, Any]) -> Layout:
        lay = _layout(counts)
        n = len(lay.keys)
        # The bytes before the counts are the same on every call: hashed once here, each
        # call goes on from a copy of this state (sha256 of the same byte string).
        head = prefix.copy()
        head.update(b"FSS" + lay.names)
        flr = b"FLR" + lay.names
        # counts | means vars "FLR" names weights intercept | n_iterations
        template = lay.counts + b"%b%d"
        pack = struct.Struct(f">{2 * n}d{len(flr)}s{n + 1}d").pack
        return (n, lay.get, head, template, pack, flr)

    def capture() -> Snapshot:
        nonlocal layout
        opt = reg.optimizer
        if (
            scaler.window_size is not None
            or type(opt) is not SGD
            or type(opt.lr) is not Constant
            or type(reg.intercept_lr) is not Constant
        ):
            return generic()
        river_counts, river_means, river_vars = scaler.counts, scaler.means, scaler.vars
        weights = reg._weights.to_dict()
        if (
            type(river_counts) is not Counter
            or type(river_means) is not defaultdict
            or type(river_vars) is not defaultdict
            or type(weights) is not dict
        ):
            return generic()
        # Plain-dict copies of the scaler's dicts (the same entries; a C-level copy of a
        # dict's table): looking a missing key up in one raises KeyError, where the
        # Counter would answer 0 and the defaultdicts would insert 0.0 into the model.
        # That makes "n keys (len) and every one of the layout's n keys (the getter does
        # not raise)" the check of each key set: the same sets `d.keys() == keys`
        # accepts, for less than the set comparison alone costs (a Counter's own lookups
        # are also slower: it is a Python subclass of dict).
        counts, means, variances = {**river_counts}, {**river_means}, {**river_vars}
        n, get, head, template, pack, flr = layout
        try:
            cs = get(counts) if len(counts) == n else None
        except KeyError:
            cs = None
        if cs is None:  # another key set than the layout's: the counts' is the new one
            if not counts:
                return generic()
            n, get, head, template, pack, flr = layout = build(counts)
            cs = get(counts)
        if len(means) != n or len(variances) != n or len(weights) != n:
            return generic()
        try:
            # the counts and the iteration count formatted as the step encoders format
            # them (b"%d", whatever number they are), the floats packed
            rest = template % (
                *cs,
                pack(*get(means), *get(variances), flr, *get(weights), reg.intercept),
                opt.n_iterations,
            )
        except (KeyError, struct.error, TypeError, ValueError, OverflowError):
            # a key the layout has is missing, or a value struct or %d refuses (a str, a
            # complex, nan, ±inf): the step encoders give those states' bytes, or raise
            # what they raise
            return generic()
        return (head, rest)

    return capture


# Fast paths for the hot linear pipeline. They encode only what learning changes: the
# hyperparameters are already bound by the spec digest, which the spec names exactly.
# Each returns None when the instance is configured outside what it covers.


class _Layout:
    """The encoding of one key set, built once: the sorted keys, their name header, a
    C-level getter of the values in key order and precompiled ``struct`` packers. Models
    see the same keys on every step."""

    __slots__ = ("counts", "get", "keys", "keyset", "names", "pack_scaler", "pack_weights")

    def __init__(self, keys: list[str]) -> None:
        n = len(keys)
        self.keys = keys
        self.keyset = frozenset(keys)
        self.names = b"%d:" % n + "\x00".join(keys).encode("utf-8") + b"\x00"
        # itemgetter of one key returns a bare value: keep the result a tuple
        self.get = operator.itemgetter(*keys) if n > 1 else (lambda d: tuple(d[k] for k in keys))
        self.pack_scaler = struct.Struct(f">{2 * n}d").pack  # means, then variances
        self.pack_weights = struct.Struct(f">{n}d").pack
        # b"%d,%d,…" % counts: one C call, the same bytes as joining b"%d" % c per count
        self.counts = b",".join([b"%d"] * n)


_LAYOUTS: dict[frozenset[str], _Layout] = {}
_last: list[_Layout | None] = [None]  # the layout used last: almost always the next one


def _layout(d: Any) -> _Layout:
    lay = _last[0]
    if lay is not None and d.keys() == lay.keyset:
        return lay
    key = frozenset(d)
    lay = _LAYOUTS.get(key)
    if lay is None:
        if len(_LAYOUTS) > 4096:  # bounded: key sets come from specs, a handful per node
            _LAYOUTS.clear()
        lay = _LAYOUTS[key] = _Layout(sorted(d))
    _last[0] = lay
    return lay


def _fast_standard_scaler(s: preprocessing.StandardScaler) -> bytes | None:
    if s.window_size is not None:
        return None
    counts, means, variances = s.counts, s.means, s.vars
    lay = _layout(counts)
    if means.keys() != lay.keyset or variances.keys() != lay.keyset:
        return None  # unusual state: let the generic walk encode it
    get = lay.get
    try:
        floats = lay.pack_scaler(*get(means), *get(variances))
    except struct.error:
        return None
    return b"FSS" + lay.names + lay.counts % get(counts) + floats


def _fast_linear_regression(m: linear_model.LinearRegression) -> bytes | None:
    opt = m.optimizer
    if type(opt) is not optim.SGD or type(opt.lr) is not optim.schedulers.Constant:
        return None
    if type(m.intercept_lr) is not optim.schedulers.Constant:
        return None
    weights = m._weights.to_dict()
    lay = _layout(weights)
    try:
        floats = lay.pack_weights(*lay.get(weights))
    except struct.error:
        return None
    return b"FLR" + lay.names + floats + _pack_d(m.intercept) + b"%d" % opt.n_iterations


_MASSES = operator.attrgetter("l_mass", "r_mass")
# id(model) -> (weak reference to the model, id of its trees list, encoding)
_HST_SHAPE: dict[int, tuple[weakref.ref[Any], int, bytes]] = {}


def _hst_shape(m: anomaly.HalfSpaceTrees) -> bytes | None:
    """What stays fixed once the trees are built: parameters, limits, and per tree, in
    depth-first order, each node's kind, split feature and threshold; and the random
    generator's state (river draws from it only to build the trees). Cached per model
    and trees list: river builds a new list when it (re)builds the trees, and a
    restored model has a new one."""
    cached = _HST_SHAPE.get(id(m))
    if cached is not None and cached[0]() is m and cached[1] == id(m.trees):
        return cached[2]
    out = [
        b"HST%d,%d,%d;" % (m.n_trees, m.height, m.window_size),
        canonical_state(m.seed),
        canonical_state(dict(m.limits)),
        canonical_state(m.rng),
        b"%d:" % len(m.trees),
    ]
    if len(m._tree_nodes) != len(m.trees):
        return None
    for root, nodes in zip(m.trees, m._tree_nodes, strict=True):
        if nodes[:1] != [root]:
            return None
        out.append(b"t%d:" % len(nodes))
        for node in nodes:
            if type(node) is PaddedBranch:
                name = node.feature
                if type(name) is not str or type(node.threshold) is not float:
                    return None
                raw = name.encode("utf-8")
                out.append(b"b%d:" % len(raw) + raw + _pack_d(node.threshold))
            elif type(node) is PaddedLeaf:
                out.append(b"l")
            else:
                return None
    shape = b"".join(out)
    if len(_HST_SHAPE) > 1024:
        for key in [k for k, v in _HST_SHAPE.items() if v[0]() is None]:
            del _HST_SHAPE[key]
        if len(_HST_SHAPE) > 1024:
            _HST_SHAPE.clear()
    _HST_SHAPE[id(m)] = (weakref.ref(m), id(m.trees), shape)
    return shape


def _fast_half_space_trees(m: anomaly.HalfSpaceTrees) -> bytes | None:
    """The shape (cached, see :func:`_hst_shape`) and what learning changes: the window
    counter, the first-window flag, and every node's (l_mass, r_mass) as int64s."""
    shape = _hst_shape(m)
    if shape is None:
        return None
    masses: list[int] = []
    for nodes in m._tree_nodes:
        masses.extend(chain.from_iterable(map(_MASSES, nodes)))
    try:
        packed = struct.pack(f">{len(masses)}q", *masses)
    except struct.error:
        return None  # a mass that is not a small int: the generic walk encodes it
    state = b"%d,%d;" % (m.counter, 1 if m._first_window else 0)
    return shape + state + packed


_FAST: dict[type, Callable[[Any], bytes | None]] = {
    preprocessing.StandardScaler: _fast_standard_scaler,
    linear_model.LinearRegression: _fast_linear_regression,
    anomaly.HalfSpaceTrees: _fast_half_space_trees,
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
        elif t.__module__.startswith("river._river_rust"):
            # no Python attributes to walk: its state is its serialization (fixed-width
            # little-endian fields, exact), the bytes pickle stores for it too
            state = obj.__getstate__()
            if type(state) is not bytes:
                raise CommitmentError(f"{t.__module__}.{t.__qualname__} state is not bytes")
            emit(b"X" + f"{t.__module__}.{t.__qualname__}".encode() + b"%d:" % len(state) + state)
        elif (hasattr(obj, "__dict__") and not callable(obj)) or _is_river(t):
            ref = self.seen.get(id(obj))
            if ref is not None:
                emit(b"@%d;" % ref)
                return
            attrs = _attrs(obj)
            if not attrs and not hasattr(obj, "__dict__"):
                # an extension type: its state is not visible here, and must not be
                # committed to as if it were empty
                raise CommitmentError(
                    f"{t.__module__}.{t.__qualname__} in the model state has no canonical "
                    "encoding (no Python attributes)"
                )
            self.seen[id(obj)] = len(self.seen)
            self.keep.append(obj)
            emit(b"O" + f"{t.__module__}.{t.__qualname__}".encode() + b":")
            _encode(attrs)
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
