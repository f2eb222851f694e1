"""Journal records and the scanner: round trips, torn tails, flipped bytes."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from broker.storage import records as r

names = st.text(max_size=20).filter(lambda s: len(s.encode()) <= 255)
publishes = st.builds(
    r.Publish,
    msg_id=st.integers(0, 2**64 - 1),
    queue=names,
    exchange=names,
    routing_key=names,
    properties=st.binary(max_size=50),
    body=st.binary(max_size=300),
    expires=st.none() | st.integers(-(2**63), 2**63 - 1),
)


def build(publishes: list[r.Publish]) -> tuple[bytes, list[int]]:
    """Records for `publishes` (seq from 1); and where each record ends."""
    data = bytearray()
    ends = []
    for seq, p in enumerate(publishes, 1):
        payload = r.encode_publish(
            p.msg_id, p.queue, p.exchange, p.routing_key, p.properties, p.body, p.expires
        )
        data += r.encode_record(r.PUBLISH, seq, payload, r.publish_flags(expires=p.expires))
        ends.append(len(data))
    return bytes(data), ends


@settings(max_examples=60, deadline=None)
@given(st.lists(publishes, max_size=8))
def test_publish_records_round_trip(items: list[r.Publish]) -> None:
    data, _ends = build(items)
    scanned = r.scan(data)
    assert not scanned.damage
    assert [rec.seq for rec in scanned.records] == list(range(1, len(items) + 1))
    assert [r.decode_publish(rec.payload, rec.flags) for rec in scanned.records] == items


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 2**64 - 1), max_size=50), st.sampled_from([r.ACK, r.DELIVER]))
def test_id_records_round_trip(ids: list[int], kind: int) -> None:
    scanned = r.scan(r.encode_record(kind, 7, r.encode_ids(ids)))
    assert len(scanned.records) == 1
    assert scanned.records[0].type == kind
    assert list(r.decode_ids(scanned.records[0].payload)) == ids


@settings(max_examples=80, deadline=None)
@given(st.lists(publishes, min_size=1, max_size=6), st.data())
def test_truncation_anywhere_keeps_every_whole_record_before_it(
    items: list[r.Publish], data: st.DataObject
) -> None:
    raw, ends = build(items)
    cut = data.draw(st.integers(0, len(raw)))
    scanned = r.scan(raw[:cut])
    whole = [end for end in ends if end <= cut]
    assert len(scanned.records) == len(whole)
    assert scanned.valid_end == (whole[-1] if whole else 0)
    if cut not in ends and cut:
        assert len(scanned.damage) == 1 and scanned.damage[0].tail
        assert scanned.damage[0].start == scanned.valid_end
    else:
        assert not scanned.damage


@settings(max_examples=80, deadline=None)
@given(st.lists(publishes, min_size=3, max_size=6), st.data())
def test_flipped_byte_loses_only_its_record(items: list[r.Publish], data: st.DataObject) -> None:
    raw, ends = build(items)
    starts = [0, *ends[:-1]]
    victim = data.draw(st.integers(0, len(items) - 1))
    position = data.draw(st.integers(starts[victim], ends[victim] - 1))
    flip = data.draw(st.integers(1, 255))
    damaged = bytearray(raw)
    damaged[position] ^= flip
    scanned = r.scan(bytes(damaged))
    survivors = [rec.seq for rec in scanned.records]
    assert survivors == [seq for seq in range(1, len(items) + 1) if seq != victim + 1]
    assert len(scanned.damage) == 1
    assert scanned.damage[0].tail == (victim == len(items) - 1)


def test_garbage_never_raises_and_finds_records_after_it() -> None:
    rng = random.Random(5)
    good = r.encode_record(r.ACK, 9, r.encode_ids([1, 2, 3]))
    for _ in range(200):
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 200)))
        junk = junk.replace(b"WJ", b"wj") + r.MAGIC * rng.randrange(3)
        scanned = r.scan(junk + good)
        assert [rec.seq for rec in scanned.records][-1:] == [9]


def test_huge_length_is_damage_not_an_allocation() -> None:
    record = bytearray(r.encode_record(r.ACK, 1, r.encode_ids([1])))
    record[4:8] = (2**32 - 1).to_bytes(4, "little")
    scanned = r.scan(bytes(record))
    assert not scanned.records
    assert scanned.damage[0].tail


def test_delivery_mode_from_raw_properties() -> None:
    """What the journal reads to decide whether a message is persistent."""
    from protocol.properties import BasicProperties
    from protocol.properties import delivery_mode_of as delivery_mode

    for props, mode in (
        (BasicProperties(), None),
        (BasicProperties(delivery_mode=2), 2),
        (BasicProperties(delivery_mode=1, content_type="text/plain"), 1),
        (
            BasicProperties(
                content_type="a",
                content_encoding="b",
                headers={"x": [1, {"y": "z"}]},
                delivery_mode=2,
            ),
            2,
        ),
        (BasicProperties(headers={"x": 1}, priority=3), None),
    ):
        assert delivery_mode(props.encode()) == mode
    # A continuation flags word (none is defined for basic, spec 4.2.6.1) is skipped.
    assert delivery_mode(b"\x10\x01\x00\x00\x02") == 2


def test_publish_without_expiry_keeps_the_old_layout_and_old_records_still_read() -> None:
    # The layout journals had before expiries were recorded, written by hand.
    old = (
        (42).to_bytes(8, "little")
        + b"\x01q"
        + b"\x02ex"
        + b"\x02rk"
        + (3).to_bytes(4, "little")
        + b"abc"
        + b"body"
    )
    assert r.encode_publish(42, "q", "ex", "rk", b"abc", b"body") == old
    assert r.publish_flags() == 0
    assert r.decode_publish(old) == r.Publish(42, "q", "ex", "rk", b"abc", b"body", None)
    assert r.publish_summary(old) == (42, "/", "q", 4, None)  # no vhost flag: in "/"


def test_publish_with_expiry_round_trips_with_its_flag() -> None:
    expires = 1_795_000_000_123  # epoch milliseconds
    flags = r.publish_flags(delivered=True, expires=expires)
    assert flags == r.FLAG_DELIVERED | r.FLAG_EXPIRES
    payload = r.encode_publish(7, "q", "", "rk", b"", b"xyz", expires)
    scanned = r.scan(r.encode_record(r.PUBLISH, 1, payload, flags))
    record = scanned.records[0]
    assert record.flags == flags
    assert r.decode_publish(record.payload, record.flags).expires == expires
    assert r.publish_summary(record.payload, record.flags) == (7, "/", "q", 3, expires)
