from __future__ import annotations

import hashlib
import math
import pickle
import random
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from river import anomaly, compose, linear_model, optim, preprocessing, stats, time_series

from oracle.models import CommitmentError, canonical_state, commitment
from oracle.models.commitment import committer, digest_of

SPEC = b"s" * 32


def trained(model, xs):  # type: ignore[no-untyped-def]
    for x, y in xs:
        model.learn_one(x, y)
    return model


def test_dict_insertion_order_does_not_matter() -> None:
    a = preprocessing.StandardScaler()
    b = preprocessing.StandardScaler()
    a.learn_one({"a": 1.0, "b": 2.0})
    b.learn_one({"b": 2.0, "a": 1.0})
    assert commitment(SPEC, a) == commitment(SPEC, b)
    assert canonical_state({"x": 1.0, "y": 2.0}) == canonical_state({"y": 2.0, "x": 1.0})


def test_last_bit_of_a_weight_changes_the_commitment() -> None:
    rng = random.Random(1)
    xs = [({"a": rng.random(), "b": rng.random()}, rng.random()) for _ in range(20)]
    model = trained(preprocessing.StandardScaler() | linear_model.LinearRegression(), xs)
    before = commitment(SPEC, model)
    lr = model["LinearRegression"]
    w = lr._weights["a"]
    lr._weights["a"] = float.fromhex(w.hex()[:-1] + ("1" if w.hex()[-1] != "1" else "2"))
    assert commitment(SPEC, model) != before
    lr._weights["a"] = w
    assert commitment(SPEC, model) == before


def test_spec_digest_is_bound() -> None:
    model = linear_model.LinearRegression()
    assert commitment(b"a" * 32, model) != commitment(b"b" * 32, model)


def test_fast_path_and_generic_walk_both_cover_state() -> None:
    """The generic walk sees learning too (used for non-fast-path classes)."""
    scaler = preprocessing.StandardScaler()
    s0 = canonical_state(scaler)
    scaler.learn_one({"a": 1.0})
    assert canonical_state(scaler) != s0


@pytest.mark.parametrize(
    "model",
    [
        anomaly.HalfSpaceTrees(n_trees=2, height=3, seed=3, limits={"a": (0.0, 1.0)}),
        time_series.HoltWinters(alpha=0.3),
        time_series.SNARIMAX(p=1, d=0, q=1),
    ],
    ids=["hst", "holtwinters", "snarimax"],
)
def test_every_allowlisted_family_has_a_canonical_encoding(model) -> None:  # type: ignore[no-untyped-def]
    for i in range(30):
        if isinstance(model, anomaly.HalfSpaceTrees):
            model.learn_one({"a": (i % 10) / 10})
        else:
            model.learn_one(float(i % 7))
    assert len(commitment(SPEC, model)) == 32


def test_unencodable_state_is_an_error() -> None:
    with pytest.raises(CommitmentError):
        canonical_state({"f": lambda: 1})


def _hst(seed: int = 3) -> anomaly.HalfSpaceTrees:
    return anomaly.HalfSpaceTrees(
        n_trees=4, height=5, window_size=20, seed=seed, limits={"a": (0.0, 1.0), "b": (0.0, 2.0)}
    )


def _stream(n: int, seed: int = 7) -> list[dict[str, float]]:
    rng = random.Random(seed)
    return [{"a": rng.random(), "b": 2 * rng.random()} for _ in range(n)]


def test_half_space_trees_fast_path_agrees_across_instances_and_follows_state() -> None:
    a, b = _hst(), _hst()
    assert commitment(SPEC, a) == commitment(SPEC, b)  # before the trees exist
    seen = set()
    for x in _stream(70):  # crosses three window pivots
        a.learn_one(x)
        b.learn_one(dict(reversed(list(x.items()))))  # insertion order must not matter
        ca, cb = commitment(SPEC, a), commitment(SPEC, b)
        assert ca == cb
        seen.add(ca)
    assert len(seen) == 70  # every learned observation moves the digest
    # one unit of mass anywhere changes it, and putting it back restores it
    before = commitment(SPEC, a)
    node = a._tree_nodes[2][9]
    node.l_mass += 1
    assert commitment(SPEC, a) != before
    node.l_mass -= 1
    assert commitment(SPEC, a) == before
    # so do the trees' shape (seed) and the window counter
    c = _hst(seed=4)
    for x in _stream(70):
        c.learn_one(x)
    assert commitment(SPEC, c) != before
    a.counter += 1
    assert commitment(SPEC, a) != before


def test_half_space_trees_fast_path_survives_pickling_and_threshold_is_bound() -> None:
    import pickle

    a = _hst()
    for x in _stream(30):
        a.learn_one(x)
    restored = pickle.loads(pickle.dumps(a))
    assert commitment(SPEC, restored) == commitment(SPEC, a)
    # a restored model with a different split threshold must not reuse a cached shape
    restored.trees[0].threshold = float.fromhex(restored.trees[0].threshold.hex()[:-1] + "0")
    other = pickle.loads(pickle.dumps(restored))
    assert commitment(SPEC, other) != commitment(SPEC, a)


def test_half_space_trees_fast_path_is_used_and_falls_back_on_odd_state() -> None:
    import sys

    module = sys.modules["oracle.models.commitment"]
    a = _hst()
    for x in _stream(25):
        a.learn_one(x)
    assert module._fast_half_space_trees(a) is not None
    a._tree_nodes[0][3].r_mass = 0.5  # not an int: the generic walk takes over
    assert module._fast_half_space_trees(a) is None
    assert len(commitment(SPEC, a)) == 32


def test_committer_equals_commitment_as_the_model_learns() -> None:
    from oracle.models.commitment import committer

    rng = random.Random(2)
    model = preprocessing.StandardScaler() | linear_model.LinearRegression()
    commit = committer(SPEC, model)
    for _ in range(25):
        model.learn_one({"a": rng.random(), "b": rng.random()}, rng.random())
        assert commit() == commitment(SPEC, model)


def test_scaler_fast_path_encodes_counts_means_and_variances_exactly() -> None:
    import struct
    import sys

    module = sys.modules["oracle.models.commitment"]
    scaler = preprocessing.StandardScaler()
    for x in ({"b": 1.0, "a": 3.0}, {"a": 0.5, "b": -2.0}, {"a": 0.25, "b": 7.0}):
        scaler.learn_one(x)
    keys = ["a", "b"]
    expected = (
        b"FSS2:a\x00b\x00"
        + b"3,3"
        + struct.pack(">4d", *[scaler.means[k] for k in keys], *[scaler.vars[k] for k in keys])
    )
    assert module._fast_standard_scaler(scaler) == expected


def test_linear_pipeline_commitment_is_pinned() -> None:
    """The value the first implementation gave (before the fast paths were reworked):
    outputs already stored by a node must still verify after an upgrade."""
    model = preprocessing.StandardScaler() | linear_model.LinearRegression(
        optimizer=optim.SGD(0.01), intercept_lr=0.01
    )
    for i in range(10):
        model.learn_one({"b": i * 0.5, "a": 1.0 / (i + 1)}, i * 0.25)
    assert commitment(SPEC, model).hex() == (
        "4e1813e9888b8e57b626449258c84d7579c1a445f90d7d958393f07302a7ac33"
    )


def test_rust_backed_state_is_committed_not_skipped() -> None:
    """stats.EWMean keeps its state in a Rust object with no Python attributes: the
    commitment must still follow it (it is a policy's reward estimate)."""
    a, b = stats.EWMean(fading_factor=0.5), stats.EWMean(fading_factor=0.5)
    assert canonical_state(a) == canonical_state(b)
    a.update(3.0)
    assert canonical_state(a) != canonical_state(b)
    b.update(3.0)
    assert canonical_state(a) == canonical_state(b)
    b.update(1.0)
    assert canonical_state(a) != canonical_state(b)
    assert canonical_state(pickle.loads(pickle.dumps(a))) == canonical_state(a)


def test_fused_linear_committer_gives_the_step_by_step_bytes_and_falls_back() -> None:
    """committer() of StandardScaler | LinearRegression packs both steps in one go; its
    bytes are the step-by-step encoding's in every state, including those it hands back
    to the step-by-step path (no weights yet, a feature the weights have not seen, a key
    with '%' in it, a rolling scaler, another optimizer)."""
    from oracle.models.commitment import committer

    def check(model, stream) -> None:  # type: ignore[no-untyped-def]
        commit = committer(SPEC, model)
        assert commit() == commitment(SPEC, model)  # nothing learned yet
        for x, y in stream:
            model.learn_one(x, y)
            assert commit() == commitment(SPEC, model)

    rng = random.Random(5)
    dense = [({"b%": rng.random(), "a": rng.random()}, rng.random()) for _ in range(30)]
    check(preprocessing.StandardScaler() | linear_model.LinearRegression(), dense)
    # a new feature appears: the scaler knows it before the weights do
    widening = [*dense[:10], *(({**x, "c": rng.random()}, y) for x, y in dense[10:])]
    check(preprocessing.StandardScaler() | linear_model.LinearRegression(), widening)
    check(preprocessing.StandardScaler() | linear_model.LinearRegression(), dense[:1])
    # a rolling scaler: outside both fast paths
    check(preprocessing.StandardScaler(window_size=5) | linear_model.LinearRegression(), dense)
    check(
        preprocessing.StandardScaler() | linear_model.LinearRegression(optimizer=optim.Adam()),
        dense,
    )
    check(
        preprocessing.StandardScaler()
        | linear_model.LinearRegression(optimizer=optim.SGD(optim.schedulers.InverseScaling(0.1))),
        dense,
    )
    # the fused path is the one taken in the usual case (not the fallback's bytes by luck)
    import sys

    module = sys.modules["oracle.models.commitment"]
    model = preprocessing.StandardScaler() | linear_model.LinearRegression()
    for x, y in dense:
        model.learn_one(x, y)
    calls = []
    capture = module._scaler_regression_capture(
        hashlib.sha256(), list(model.steps.values()), lambda: calls.append(1) or b""
    )
    assert capture is not None and len(module.digest_of(capture())) == 32 and not calls


# -- the fused StandardScaler | LinearRegression committer against the generic bytes -------
#
# The digests are stored and signed: the fused committer must give the step-by-step
# encoding's bytes (what commitment() computes) in every state, and hand every state it does
# not cover back to it. These tests compare the two on random learning and on perturbed
# states, and check that the fused path itself (not its fallback) made the bytes compared.

_MODULE = sys.modules["oracle.models.commitment"]
_NAMES = ["a", "b%", "c", "dé", "e_long_feature_name"]
# every finite double is fair, and these edges often: signed zeros, subnormals, the
# smallest normal, the largest finite values
_EDGES = [0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308]
_FLOATS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([*_EDGES, -1.7976931348623157e308]),
    st.floats(min_value=-1e6, max_value=1e6),
)
# features missing from some records: the counts differ; features first seen late: a new
# key set (a new layout) mid-stream
_RECORDS = st.lists(
    st.tuples(st.dictionaries(st.sampled_from(_NAMES), _FLOATS, min_size=1), _FLOATS),
    max_size=25,
)


def _linear(**kwargs: Any) -> compose.Pipeline:
    return preprocessing.StandardScaler() | linear_model.LinearRegression(**kwargs)


def _fused(model: compose.Pipeline) -> tuple[Callable[[], bytes], list[int]]:
    """The fused committer with a generic that only records its calls: it gives the
    fused path's own bytes, and tells when it deferred."""
    prefix = hashlib.sha256(_MODULE._DOMAIN)
    prefix.update(SPEC)
    calls: list[int] = []

    def generic() -> bytes:
        calls.append(1)
        return b"fallback"

    capture = _MODULE._scaler_regression_capture(prefix, list(model.steps.values()), generic)
    assert capture is not None
    return lambda: digest_of(capture()), calls


def _outcome(f: Callable[[], bytes]) -> bytes | type[Exception]:
    """The bytes f returns, or the type of what it raises: a state the generic encoding
    refuses must not get a digest from the fused path either."""
    try:
        return f()
    except Exception as e:  # compared, not swallowed
        return type(e)


def _check(model: compose.Pipeline, fused: Callable[[], bytes], calls: list[int]) -> bool:
    """The committer, the fused path and commitment() agree; no call changes the model
    (its pickle: every key, value bit and insertion order). True when the fused path
    made the bytes itself (did not defer, did not raise)."""
    before = pickle.dumps(model)
    expected = _outcome(lambda: commitment(SPEC, model))
    assert _outcome(committer(SPEC, model)) == expected
    deferred = len(calls)
    got = _outcome(fused)
    if len(calls) == deferred:  # its own answer: the bytes, or the error the generic raises
        assert got == expected
    assert pickle.dumps(model) == before
    return len(calls) == deferred and type(got) is bytes


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=_RECORDS, lr=st.sampled_from([None, 0.01, 0.5]))
def test_fused_committer_gives_the_generic_bytes_as_the_model_learns(
    records: list[tuple[dict[str, float], float]], lr: float | None
) -> None:
    model = _linear() if lr is None else _linear(optimizer=optim.SGD(lr), intercept_lr=lr)
    fused, calls = _fused(model)
    commit = committer(SPEC, model)
    _check(model, fused, calls)
    for x, y in records:
        model.learn_one(x, y)  # extreme values give inf and nan states: checked too
        _check(model, fused, calls)
        assert _outcome(commit) == _outcome(lambda: commitment(SPEC, model))


def _learned(features: tuple[str, ...] = ("a", "b%", "c")) -> compose.Pipeline:
    rng = random.Random(11)
    model = _linear()
    for _ in range(12):
        model.learn_one({k: rng.uniform(-5, 5) for k in features}, rng.uniform(-1, 1))
    return model


def _rename(d: Any, old: str, new: str) -> None:
    d[new] = d.pop(old)


# Each perturbs a learned state into one the fused path must not make bytes for: it hands
# it back to the generic encoding, or raises what that raises (a count %d refuses). Same
# length but other keys included: a check of the key count alone would let them through.
_Perturb = Callable[[Any, Any], object]  # (the scaler, the regression) -> ignored
_MUST_DEFER: dict[str, _Perturb] = {
    "weights: same length, another key": lambda s, r: _rename(r._weights, "b%", "zz"),
    "weights: a key more": lambda s, r: r._weights.__setitem__("zz", 0.5),
    "weights: a key fewer": lambda s, r: r._weights.pop("a"),
    "weights: none yet": lambda s, r: r._weights.clear(),
    "means: same length, another key": lambda s, r: _rename(s.means, "a", "zz"),
    "means: a key fewer": lambda s, r: s.means.pop("c"),
    "vars: same length, another key": lambda s, r: _rename(s.vars, "c", "zz"),
    "vars: a key more": lambda s, r: s.vars.__setitem__("zz", 1.0),
    "counts: same length, another key": lambda s, r: _rename(s.counts, "a", "zz"),
    "counts: a key more": lambda s, r: s.counts.__setitem__("zz", 3),
    "counts: empty": lambda s, r: s.counts.clear(),
    "a mean struct refuses": lambda s, r: s.means.__setitem__("a", "1.5"),
    "a huge int variance": lambda s, r: s.vars.__setitem__("b%", 10**400),
    "no intercept": lambda s, r: setattr(r, "intercept", None),
    # == the other counts (12) but %d refuses it: formatting "all counts equal" once
    # would give it a digest the generic encoding does not
    "a complex count": lambda s, r: s.counts.__setitem__("c", complex(12)),
    "a NaN count": lambda s, r: s.counts.__setitem__("a", math.nan),
    "an infinite count": lambda s, r: s.counts.__setitem__("a", math.inf),
    "a str count": lambda s, r: s.counts.__setitem__("a", "12"),
    "a rolling scaler": lambda s, r: setattr(s, "window_size", 3),
    "another optimizer": lambda s, r: setattr(r, "optimizer", optim.Adam()),
}


@pytest.mark.parametrize("perturb", list(_MUST_DEFER.values()), ids=list(_MUST_DEFER))
def test_fused_committer_defers_every_state_it_does_not_cover(perturb: _Perturb) -> None:
    model = _learned()
    fused, calls = _fused(model)
    assert _check(model, fused, calls)  # the layout of these keys is built and used
    perturb(*model.steps.values())
    assert not _check(model, fused, calls)


# ... and states it covers, with the bytes of the step-by-step encoding.
_COVERED: dict[str, _Perturb] = {
    "unequal counts": lambda s, r: s.counts.__setitem__("a", s.counts["a"] + 7),
    "a huge count": lambda s, r: s.counts.__setitem__("a", 10**40),
    "an int mean": lambda s, r: s.means.__setitem__("a", 3),
    "-0.0 and a subnormal": lambda s, r: (
        s.means.__setitem__("a", -0.0),
        s.vars.__setitem__("a", 5e-324),
    ),
    "inf and nan weights": lambda s, r: (
        r._weights.__setitem__("a", math.inf),
        r._weights.__setitem__("c", math.nan),
    ),
    # numbers that are not ints: %d formats them in both encodings alike (river's counts
    # are ints)
    "a float count": lambda s, r: s.counts.__setitem__("c", 12.5),
    "a float count equal to the others": lambda s, r: s.counts.__setitem__("c", 12.0),
    "a bool count": lambda s, r: s.counts.__setitem__("c", True),
    "a numpy count": lambda s, r: s.counts.__setitem__("c", np.int64(12)),
    "a float iteration count": lambda s, r: setattr(r.optimizer, "n_iterations", 3.0),
    "the keys inserted in another order": lambda s, r: [
        d.__setitem__(k, d.pop(k)) for d in (s.counts, s.means, s.vars) for k in ("b%", "a")
    ],
}


@pytest.mark.parametrize("perturb", list(_COVERED.values()), ids=list(_COVERED))
def test_fused_committer_covers_odd_values_with_the_generic_bytes(perturb: _Perturb) -> None:
    model = _learned()
    fused, calls = _fused(model)
    assert _check(model, fused, calls)
    perturb(*model.steps.values())
    assert _check(model, fused, calls)


class _Halving(dict[str, float]):
    """A mapping whose lookups are not its stored values."""

    def __getitem__(self, key: str) -> float:
        return super().__getitem__(key) / 2


# ... and, deferred or not, other mapping types than river's, with the generic bytes.
_OTHER_MAPPINGS: dict[str, _Perturb] = {
    "counts: a plain dict": lambda s, r: setattr(s, "counts", dict(s.counts)),
    "means: a plain dict": lambda s, r: setattr(s, "means", dict(s.means)),
    "vars: a dict whose lookups differ": lambda s, r: setattr(s, "vars", _Halving(s.vars)),
}


@pytest.mark.parametrize("perturb", list(_OTHER_MAPPINGS.values()), ids=list(_OTHER_MAPPINGS))
def test_fused_committer_gives_the_generic_bytes_for_other_mappings(perturb: _Perturb) -> None:
    model = _learned()
    fused, calls = _fused(model)
    assert _check(model, fused, calls)
    perturb(*model.steps.values())
    _check(model, fused, calls)


def test_fused_committer_follows_a_new_key_set_and_back() -> None:
    """A feature appears (the scaler knows it before the weights: deferred), then the
    weights learn it (the new layout is used), and a model with the old keys again."""
    model = _learned()
    fused, calls = _fused(model)
    assert _check(model, fused, calls)
    scaler, reg = model.steps.values()
    scaler.learn_one({"a": 1.0, "b%": 2.0, "c": 3.0, "new": 4.0})
    assert not _check(model, fused, calls)
    model.learn_one({"a": 1.0, "b%": 2.0, "c": 3.0, "new": 4.0}, 0.5)
    assert _check(model, fused, calls)
    for d in (scaler.counts, scaler.means, scaler.vars, reg._weights):
        d.pop("new")
    assert _check(model, fused, calls)


def test_empty_model_is_deferred() -> None:
    model = _linear()
    fused, calls = _fused(model)
    assert not _check(model, fused, calls)
    model["StandardScaler"].learn_one({"a": 1.0})  # scaled but no weights yet
    assert not _check(model, fused, calls)
