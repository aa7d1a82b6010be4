from __future__ import annotations

import random

import pytest
from river import anomaly, linear_model, preprocessing, time_series

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
