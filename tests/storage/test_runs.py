"""The run codec (oracle.storage.runs): what a write stores is read back entry for entry,
bit for bit; a write's rows are cut into runs feed by feed and at RUN_MAX; a run that is
not what the codec wrote is refused with StorageError, never read as something else."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oracle.storage import ObservationRow, OutputRow, StorageError
from oracle.storage.runs import (
    RUN_MAX,
    RunOverlap,
    observation_runs,
    output_runs,
    read_observations,
    read_outputs,
)

texts = st.text(max_size=40)
floats = st.floats(allow_nan=False, allow_infinity=False)
INT128 = st.integers(min_value=-(2**127), max_value=2**127 - 1)


@st.composite
def observation_rows(draw: st.DrawFn) -> list[ObservationRow]:
    feeds = draw(st.lists(st.sampled_from(["a", "b", "ü/x"]), min_size=1, max_size=6))
    rows: list[ObservationRow] = []
    seq = {f: draw(st.integers(0, 2**62)) for f in set(feeds)}
    for feed in feeds:  # each feed's stretch, several stretches of one feed possible
        for _ in range(draw(st.integers(1, 5))):
            seq[feed] += draw(st.integers(1, 3))
            rows.append(
                ObservationRow(
                    feed,
                    seq[feed],
                    draw(texts),
                    draw(st.integers(0, 2**62)),
                    draw(st.none() | texts),
                    {"x": draw(floats), "k": draw(texts)},
                )
            )
    return rows


@st.composite
def output_rows(draw: st.DrawFn) -> list[OutputRow]:
    n = draw(st.integers(1, 12))
    first = draw(st.integers(0, 2**62))
    return [
        OutputRow(
            "o",
            first + i,
            draw(st.integers(0, 2**62)),
            draw(INT128),
            draw(floats),
            draw(st.binary(min_size=32, max_size=32)),
            draw(st.booleans()),
        )
        for i in range(n)
    ]


def _bits(x: float) -> bytes:
    return struct.pack(">d", x)


@given(observation_rows())
def test_observations_read_back_as_written(rows: list[ObservationRow]) -> None:
    runs = observation_runs(rows)
    back = [o for run in runs for o in read_observations(run.feed_id, run.body)]
    assert back == rows
    for run in runs:
        entries = read_observations(run.feed_id, run.body)
        assert (run.first_seq, run.last_seq, run.size) == (
            entries[0].seq,
            entries[-1].seq,
            len(entries),
        )
        assert run.last_observed_at_ms == entries[-1].observed_at_ms


@given(output_rows())
def test_outputs_read_back_bit_for_bit(rows: list[OutputRow]) -> None:
    (run,) = output_runs(rows)
    back = read_outputs(run.feed_id, run.body, run.commitments)
    assert back == rows
    assert [_bits(o.raw_value) for o in back] == [_bits(o.raw_value) for o in rows]  # -0.0 too
    assert all(type(o.value) is int and type(o.publish) is bool for o in back)


def test_a_long_write_is_cut_at_run_max_and_feeds_never_share_a_run() -> None:
    rows = [ObservationRow("a", s, "src", s, None, {}) for s in range(1, 2 * RUN_MAX + 2)]
    rows += [ObservationRow("b", 1, "src", 1, None, {})]
    runs = observation_runs(rows)
    assert [(r.feed_id, r.first_seq, r.last_seq, r.size) for r in runs] == [
        ("a", 1, RUN_MAX, RUN_MAX),
        ("a", RUN_MAX + 1, 2 * RUN_MAX, RUN_MAX),
        ("a", 2 * RUN_MAX + 1, 2 * RUN_MAX + 1, 1),
        ("b", 1, 1, 1),
    ]


@pytest.mark.parametrize("seqs", [[1, 1], [2, 1], [1, 3, 2]])
def test_seqs_that_do_not_increase_within_a_write_are_refused(seqs: list[int]) -> None:
    with pytest.raises(RunOverlap, match="do not increase"):
        observation_runs([ObservationRow("a", s, "src", s, None, {}) for s in seqs])
    with pytest.raises(RunOverlap, match="do not increase"):
        output_runs([OutputRow("a", s, s, 1, 1.0, b"c" * 32, False) for s in seqs])


def test_a_commitment_of_another_length_is_refused_at_the_write() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        output_runs([OutputRow("a", 1, 1, 1, 1.0, b"c" * 31, False)])


GOOD_OUT = output_runs([OutputRow("o", s, s, s, s / 3, b"c" * 32, True) for s in (1, 2)])[0]
GOOD_BODY = '[[1,1,"1",0.3333333333333333,true],[2,2,"2",0.6666666666666666,true]]'


@pytest.mark.parametrize(
    ("body", "commitments"),
    [
        ("", GOOD_OUT.commitments),  # not JSON
        ('{"seq": [1]}', GOOD_OUT.commitments),  # not an array
        ("[1, 2]", GOOD_OUT.commitments),  # not an array of entries
        ('[[1,1,"1",0.3],[2,2,"2",0.6,true]]', GOOD_OUT.commitments),  # an entry cut short
        ('[[1,1,"1",0.3,true,7],[2,2,"2",0.6,true]]', GOOD_OUT.commitments),  # one too long
        (GOOD_BODY.replace('"2"', '"x"'), GOOD_OUT.commitments),  # a value not a number
        (GOOD_BODY.replace('"2"', "[2]"), GOOD_OUT.commitments),
        (GOOD_BODY.replace("0.3333333333333333", "null"), GOOD_OUT.commitments),
        (GOOD_BODY.replace("0.3333333333333333", '"a"'), GOOD_OUT.commitments),
        ('[[1,1,"1",0.3,true]]', GOOD_OUT.commitments),  # an entry fewer than commitments
        (GOOD_BODY, GOOD_OUT.commitments[:-1]),  # a commitment cut short
        (GOOD_BODY, GOOD_OUT.commitments + b"c" * 32),  # one too many
    ],
)
def test_a_malformed_output_run_is_a_storage_error(body: str, commitments: bytes) -> None:
    assert GOOD_OUT.body == GOOD_BODY  # the format: an array of [seq, t, value, raw, publish]
    assert read_outputs("o", GOOD_OUT.body, GOOD_OUT.commitments)  # the good one reads
    with pytest.raises(StorageError, match="run of o"):
        read_outputs("o", body, commitments)


@given(st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_any_text_as_an_observation_run_reads_or_is_refused_cleanly(body: str) -> None:
    try:
        rows = read_observations("a", body)
    except StorageError:
        return
    assert all(isinstance(r, ObservationRow) for r in rows)


@pytest.mark.parametrize(
    "body",
    [
        '[[1,"src",1,null]]',  # an entry cut short
        '[[1,"src",1,null,{},2]]',  # one too long
        '[[1,"src",1,null,"{}"]]',  # a record that is no object
        '[[1,"src",1,null,[1.5]]]',
        "[{}]",
        "{}",
        "[1]",
    ],
)
def test_a_malformed_observation_run_is_a_storage_error(body: str) -> None:
    assert read_observations("a", '[[1,"src",1,null,{"y":1.5}]]') == [
        ObservationRow("a", 1, "src", 1, None, {"y": 1.5})
    ]
    with pytest.raises(StorageError, match="run of a"):
        read_observations("a", body)


def test_a_poll_of_many_feeds_is_one_run_a_feed_and_reads_back() -> None:
    """The many-feeds path (every row its own feed) gives what the general one gives."""
    rows = [
        OutputRow(f"f{i}", 7, 1000, 10**30 + i, i / 7, bytes([i]) * 32, i % 2 == 0)
        for i in range(50)
    ]
    runs = output_runs(rows)
    assert [(r.feed_id, r.first_seq, r.last_seq, r.size) for r in runs] == [
        (f"f{i}", 7, 7, 1) for i in range(50)
    ]
    assert [o for r in runs for o in read_outputs(r.feed_id, r.body, r.commitments)] == rows
    # the same rows with one feed twice take the general path: the same runs
    general = output_runs([*rows, OutputRow("f0", 8, 1001, 1, 0.5, b"d" * 32, False)])
    assert general[:50] == runs


def test_floats_keep_their_exact_bits_through_a_run() -> None:
    odd = [0.1, -0.0, 5e-324, 1.7976931348623157e308, 1e-7, math.pi]
    rows = [OutputRow("o", i + 1, i, 0, x, b"c" * 32, False) for i, x in enumerate(odd)]
    (run,) = output_runs(rows)
    back = read_outputs("o", run.body, run.commitments)
    assert [_bits(o.raw_value) for o in back] == [_bits(x) for x in odd]
