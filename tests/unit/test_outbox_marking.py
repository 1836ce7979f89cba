"""The outbox relay's two pure rules: which rows of a pass go to the producer together (a
wave), and which acknowledged rows may be marked published. A later event of a user is never
handed over on another topic before the earlier ones were acknowledged, nor marked ahead of
an earlier one that was not."""

from __future__ import annotations

import itertools
import random

from exammentor.messaging.outbox import OutboxRow, next_wave, publishable

A, B, C = b"alice", b"bob", b"carol"


def rows(*spec: tuple[bytes, str]) -> list[OutboxRow]:
    """Rows with ids 1, 2, ... in the order given."""
    return [OutboxRow(i, topic, key) for i, (key, topic) in enumerate(spec, start=1)]


def ids(some: list[OutboxRow]) -> list[int]:
    return [r.id for r in some]


def test_a_wave_takes_each_keys_rows_up_to_its_first_change_of_topic() -> None:
    batch = rows((A, "t"), (B, "t"), (A, "t"), (A, "u"), (B, "u"), (C, "t"), (A, "t"))
    wave, rest = next_wave(batch, set())
    assert ids(wave) == [1, 2, 3, 6]
    # Alice's row on "u" and everything of hers after it wait, and so does Bob's on "u".
    assert ids(rest) == [4, 5, 7]
    wave, rest = next_wave(rest, set())
    assert ids(wave) == [4, 5]
    assert ids(rest) == [7]
    wave, rest = next_wave(rest, set())
    assert (ids(wave), rest) == ([7], [])


def test_a_blocked_keys_rows_leave_the_pass() -> None:
    batch = rows((A, "t"), (B, "t"), (A, "u"), (B, "t"))
    wave, rest = next_wave(batch, {A})
    assert (ids(wave), rest) == ([2, 4], [])


def test_only_rows_whose_earlier_rows_of_the_key_were_acknowledged_are_marked() -> None:
    batch = rows((A, "t"), (B, "t"), (A, "u"), (C, "t"), (B, "t"), (A, "t"))
    # Alice's first row failed while her later ones (one on another topic) were acknowledged;
    # Bob's second row got no answer; Carol's went through.
    acknowledged = {2, 3, 4, 6}
    assert publishable(batch, acknowledged) == [2, 4]
    assert publishable(batch, {1, 2, 3, 4, 5, 6}) == [1, 2, 3, 4, 5, 6]
    assert publishable(batch, set()) == []


def test_marking_never_marks_a_later_row_of_a_key_without_every_earlier_one() -> None:
    """Every outcome of a pass over a mixed batch: the marked rows of each key are a prefix of
    its rows, and every acknowledged row of that prefix is marked."""
    generator = random.Random(16)
    for _ in range(500):
        spec = [(generator.choice((A, B, C)), generator.choice("tu")) for _ in range(12)]
        batch = rows(*spec)
        acknowledged = {r.id for r in batch if generator.random() < 0.8}
        marked = set(publishable(batch, acknowledged))
        assert marked <= acknowledged
        for key in (A, B, C):
            of_key = [r.id for r in batch if r.key == key]
            prefix = list(itertools.takewhile(acknowledged.__contains__, of_key))
            assert [i for i in of_key if i in marked] == prefix


def test_every_row_is_in_exactly_one_wave_when_nothing_fails() -> None:
    generator = random.Random(5)
    spec = [(generator.choice((A, B, C)), generator.choice("tuv")) for _ in range(60)]
    rest = rows(*spec)
    waves: list[list[OutboxRow]] = []
    while rest:
        wave, rest = next_wave(rest, set())
        assert wave
        waves.append(wave)
    seen = [r.id for wave in waves for r in wave]
    assert sorted(seen) == list(range(1, 61))
    # Within a wave each key has one topic; across waves each key's rows keep their id order.
    for key in (A, B, C):
        assert all(len({r.topic for r in wave if r.key == key}) <= 1 for wave in waves)
        of_key = [r.id for wave in waves for r in wave if r.key == key]
        assert of_key == sorted(of_key)
