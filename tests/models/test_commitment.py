from __future__ import annotations

import hashlib
import pickle
import random

import pytest
from river import anomaly, linear_model, optim, preprocessing, stats, time_series

from oracle.models import CommitmentError, canonical_state, commitment

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
    fused = module._scaler_regression_committer(
        hashlib.sha256(), list(model.steps.values()), lambda: calls.append(1) or b""
    )
    assert fused is not None and len(fused()) == 32 and not calls
