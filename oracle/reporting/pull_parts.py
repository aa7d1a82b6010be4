"""A round's feed updates in parts: how a pull round moves 10,000 leaves (or a member's
10,000 outputs) through p2p messages of at most 64 KiB (oracle.p2p.wire).

A list of updates, sorted by feed id, is cut into parts of ``LEAVES_PER_PART`` (the last
one shorter); each part travels in its own signed message, its index in the header's
``attempt`` byte (so the replay guard tells the parts apart), and says where it belongs::

    part = index u16 ‖ parts u16 ‖ total u32 ‖ update[count] (88 bytes each, the report's
           update layout)       count = min(LEAVES_PER_PART, total − index · LEAVES_PER_PART)

``parts`` must be ⌈total / LEAVES_PER_PART⌉ (1 for an empty list) and ``count`` is implied,
so a part's length is exact: no two byte strings mean the same part.

Every limit is explicit, and what a sender can make a receiver hold is bounded:

* a part is at most 8 + 720 · 88 = 63,368 bytes (the p2p payload limit is 65,417);
* at most ``MAX_PARTS`` parts, so at most ``MAX_TOTAL`` updates in a list;
* a receiver assembling leaves (:class:`PartAssembly`) takes no more than the feeds it
  carries (a root has at most one leaf per feed), fixes the list's ``total`` and ``parts``
  from the first part and refuses a part that disagrees, a part index twice, or an index
  past ``parts``; parts may arrive in any order; a list is used only once every part is in;
* a node holds the assemblies of at most ``MAX_ASSEMBLIES`` rounds per sender
  (:class:`Assemblies`), that sender's oldest dropped first, and only for rounds the
  sender leads (the caller checks that before adding): a Byzantine leader's parts never
  push out another leader's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from oracle.p2p.errors import MessageRejected
from oracle.p2p.wire import HEADER_LEN, MAX_MESSAGE_BYTES, MAX_PARTS, SIGNATURE_LEN, Reader
from oracle.reporting.context import Refusal
from oracle.reporting.report import UPDATE_SIZE

PART_HEADER = 8
LEAVES_PER_PART = 720
MAX_TOTAL = LEAVES_PER_PART * MAX_PARTS  # 23,040 updates
MAX_ASSEMBLIES = 2  # per sender
_ZERO_ID = bytes(32)
assert PART_HEADER + LEAVES_PER_PART * UPDATE_SIZE <= MAX_MESSAGE_BYTES - HEADER_LEN - SIGNATURE_LEN


def part_count(total: int) -> int:
    """How many parts a list of ``total`` updates travels in."""
    return max(1, -(-total // LEAVES_PER_PART))


def _part_size(index: int, total: int) -> int:
    return max(0, min(LEAVES_PER_PART, total - index * LEAVES_PER_PART))


def encode_parts(records: Sequence[bytes]) -> list[bytes]:
    """``records`` (encoded updates, already sorted) as their parts, in index order."""
    total = len(records)
    if total > MAX_TOTAL:
        raise ValueError(f"{total} updates, at most {MAX_TOTAL} travel in parts")
    parts = part_count(total)
    out = []
    for i in range(parts):
        chunk = records[i * LEAVES_PER_PART : (i + 1) * LEAVES_PER_PART]
        head = i.to_bytes(2, "big") + parts.to_bytes(2, "big") + total.to_bytes(4, "big")
        out.append(head + b"".join(chunk))
    return out


@dataclass(frozen=True, slots=True)
class Part:
    index: int
    parts: int
    total: int
    raw: bytes  # the part's updates, 88 bytes each

    def records(self) -> tuple[bytes, ...]:
        """The part's updates, encoded (88 bytes each), strictly ascending by feed id and
        none the zero id; MessageRejected if not. Every other field of an encoded update is
        in range by construction (report.decode_update), so nothing else is decoded here."""
        raw = self.raw
        out = tuple(raw[at : at + UPDATE_SIZE] for at in range(0, len(raw), UPDATE_SIZE))
        prev = _ZERO_ID
        for record in out:
            feed_id = record[:32]
            if not prev < feed_id:
                if feed_id == _ZERO_ID:
                    raise MessageRejected("malformed", f"part {self.index}: the zero feed id")
                raise MessageRejected(
                    "malformed", f"part {self.index}: updates not in strictly ascending feed id"
                )
            prev = feed_id
        return out


def decode_part(data: bytes, *, index: int) -> Part:
    """The part in ``data``, which its message's header says is part ``index``;
    MessageRejected (malformed) saying what is wrong."""
    r = Reader(data, "part")
    got, parts, total = r.u16(), r.u16(), r.u32()
    if got != index:
        raise MessageRejected("malformed", f"part {got} in the message of part {index}")
    if total > MAX_TOTAL:
        raise MessageRejected("malformed", f"part: {total} updates, at most {MAX_TOTAL}")
    if parts != part_count(total):
        raise MessageRejected("malformed", f"part: {parts} parts for {total} updates")
    if index >= parts:
        raise MessageRejected("malformed", f"part {index} of {parts}")
    raw = r.take(_part_size(index, total) * UPDATE_SIZE)
    r.done()
    return Part(index, parts, total, raw)


@dataclass
class PartAssembly:
    """One round's leaves, as their parts come in (any order, each once)."""

    parts: int
    total: int
    received: dict[int, bytes] = field(default_factory=dict)
    _leaves: tuple[bytes, ...] | None = None
    cache: dict[str, object] = field(default_factory=dict)  # e.g. the tree, once built

    @property
    def complete(self) -> bool:
        return len(self.received) == self.parts

    def add(self, part: Part) -> None:
        if (part.parts, part.total) != (self.parts, self.total):
            raise Refusal(
                "part_mismatch",
                f"part {part.index} says {part.total} leaves in {part.parts} parts, "
                f"earlier parts {self.total} in {self.parts}",
            )
        if part.index in self.received:
            raise Refusal("duplicate_part", f"part {part.index} arrived twice")
        self.received[part.index] = part.raw

    def leaves(self) -> tuple[bytes, ...]:
        """Every part's leaves (encoded updates) in index order; Refusal while a part is
        missing or if a part does not decode."""
        if self._leaves is None:
            if not self.complete:
                missing = sorted(set(range(self.parts)) - set(self.received))
                raise Refusal("missing_parts", f"parts {missing[:8]} of {self.parts} not received")
            out: list[bytes] = []
            for i in range(self.parts):
                try:
                    out.extend(Part(i, self.parts, self.total, self.received[i]).records())
                except MessageRejected as exc:
                    raise Refusal("malformed", exc.detail) from None
            self._leaves = tuple(out)
        return self._leaves


class Assemblies:
    """The leaf assemblies of the last few rounds, by the round's leader (at most
    ``limit`` rounds each)."""

    def __init__(self, limit: int = MAX_ASSEMBLIES) -> None:
        self.limit = limit
        self._by_round: dict[int, PartAssembly] = {}
        self._sender: dict[int, int] = {}  # round → the member that sent its parts

    def __len__(self) -> int:
        return len(self._by_round)

    def get(self, round_: int) -> PartAssembly | None:
        return self._by_round.get(round_)

    def add(self, round_: int, sender: int, part: Part, *, max_leaves: int) -> PartAssembly:
        """File ``part`` of round ``round_``'s leaves, sent by ``sender`` (the round's
        leader: the caller checked); Refusal if it cannot be taken."""
        if part.total > max_leaves:
            raise Refusal("too_many_leaves", f"{part.total} leaves, this node carries {max_leaves}")
        if part.total == 0:
            raise Refusal("no_leaves", "a pull root has at least one leaf")
        assembly = self._by_round.get(round_)
        if assembly is None:
            own = sorted(r for r, s in self._sender.items() if s == sender)
            if len(own) >= self.limit:
                if round_ < own[0]:
                    raise Refusal("stale_round", f"parts of round {round_}, older than every kept")
                del self._by_round[own[0]], self._sender[own[0]]
            assembly = self._by_round[round_] = PartAssembly(part.parts, part.total)
            self._sender[round_] = sender
        assembly.add(part)
        return assembly
