"""Differential tests against pamqp (the codec of aio-pika): what pamqp encodes we
decode to the same values, and what we encode pamqp decodes to the same values,
for every method and for content properties with random subsets of the 14
fields. pamqp is a test dependency only.

The value space is what both codecs can carry: pamqp validates exchange and
queue names against RabbitMQ's name pattern, writes floats as float32, reads
decimals as unsigned, reads timestamps past 2106 as milliseconds, refuses a
cluster_id and any delivery_mode but 1 or 2, treats an empty string property
as absent, and reads a longlong (a delivery tag) as signed. The generators stay inside those rules.
"""

import datetime
import decimal
import string

import pytest
from amqp_strategies import method_strategy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pamqp import base as pamqp_base
from pamqp import body as pamqp_body
from pamqp import commands, frame
from pamqp import header as pamqp_header

from protocol import methods as m
from protocol.frames import (
    BodyFrame,
    HeaderFrame,
    MethodFrame,
    decode_all,
    encode_content_frames,
    encode_method_frame,
)
from protocol.properties import BasicProperties

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)

#: pamqp classes by frame index (class_id << 16 | method_id).
PAMQP = {
    cls.index: cls
    for group in (commands.Connection, commands.Channel, commands.Exchange, commands.Queue,
                  commands.Basic, commands.Confirm, commands.Tx)
    for cls in vars(group).values()
    if isinstance(cls, type) and issubclass(cls, pamqp_base.Frame) and cls.__name__ != "Properties"
}
#: pamqp's names for arguments we name differently.
RENAMED = {"exchange_type": "type"}
#: reserved-* arguments that we do not expose.
RESERVED = {
    "ticket", "capabilities", "insist", "known_hosts", "out_of_band", "channel_id",
    "cluster_id",  # basic.get-empty's reserved-1
}
BINARY = {"response", "challenge", "new_secret"}  # longstr as bytes on our side
NAME_FIELDS = {"exchange", "queue", "destination", "source"}

names = st.text(alphabet=string.ascii_letters + string.digits + "_.:-", max_size=40)
keys = st.text(alphabet=string.ascii_letters + string.digits + "-_", max_size=30)
shared_scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(width=32, allow_nan=False),
    st.builds(
        lambda mantissa, scale: decimal.Decimal(mantissa).scaleb(-scale),
        st.integers(0, 2**31 - 1),
        st.integers(0, 12),
    ),
    st.text(max_size=40),
    st.binary(max_size=20).map(bytearray),
    st.integers(0, 2**32 - 1).map(lambda s: EPOCH + datetime.timedelta(seconds=s)),
    st.none(),
)
shared_values = st.recursive(
    shared_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)
    ),
    max_leaves=15,
)
shared_tables = st.dictionaries(keys, shared_values, max_size=6)


def ours_for(cls):
    overrides = {
        "binary": st.text(alphabet=string.printable, max_size=50).map(str.encode),
        # pamqp reads longlong (delivery tags) as signed; the spec says unsigned
        "longlong": st.integers(0, 2**63 - 1),
    }
    strategy = method_strategy(cls, overrides, tables=shared_tables)
    fields = set(cls.FIELDS) & NAME_FIELDS
    if not fields:
        return strategy
    # names that pamqp accepts
    return st.tuples(strategy, st.fixed_dictionaries({f: names for f in fields})).map(
        lambda pair: _with(pair[0], pair[1])
    )


def _with(method, values):
    for name, value in values.items():
        setattr(method, name, value)
    return method


def _same(ours, theirs, name):
    if name in BINARY:
        ours = ours.decode()
    assert ours == theirs, name


ALL_METHODS = sorted(m.METHODS.values(), key=lambda c: (c.CLASS_ID, c.METHOD_ID))


def test_pamqp_knows_the_same_methods():
    assert set(PAMQP) == {(c.CLASS_ID << 16) | c.METHOD_ID for c in ALL_METHODS}


@pytest.mark.filterwarnings("ignore:This command is deprecated:DeprecationWarning")
@pytest.mark.parametrize("cls", ALL_METHODS, ids=lambda c: c.NAME)
def test_method_both_ways(cls):
    pamqp_cls = PAMQP[(cls.CLASS_ID << 16) | cls.METHOD_ID]

    @SETTINGS
    @given(ours_for(cls))
    def check(method):
        # ours -> pamqp
        consumed, channel, value = frame.unmarshal(encode_method_frame(3, method))
        assert channel == 3 and isinstance(value, pamqp_cls)
        for attr in pamqp_cls.attributes():
            if attr not in RESERVED:
                _same(getattr(method, RENAMED.get(attr, attr)), getattr(value, attr), attr)
        # pamqp -> ours
        kwargs = {}
        for attr in pamqp_cls.attributes():
            if attr in RESERVED:
                continue
            ours = getattr(method, RENAMED.get(attr, attr))
            kwargs[attr] = ours.decode() if attr in BINARY else ours
        [decoded] = decode_all(frame.marshal(pamqp_cls(**kwargs), 5), 0)
        assert isinstance(decoded, MethodFrame) and decoded.channel == 5
        assert decoded.method == method

    check()


_property_values = {
    "content_type": st.text(min_size=1, max_size=30),
    "content_encoding": st.text(min_size=1, max_size=30),
    "headers": shared_tables.filter(bool),
    "delivery_mode": st.sampled_from([1, 2]),
    "priority": st.integers(0, 255),
    "correlation_id": st.text(min_size=1, max_size=30),
    "reply_to": st.text(min_size=1, max_size=30),
    "expiration": st.text(min_size=1, max_size=30),
    "message_id": st.text(min_size=1, max_size=30),
    "timestamp": st.integers(0, 2**32 - 1),
    "type": st.text(min_size=1, max_size=30),
    "user_id": st.text(min_size=1, max_size=30),
    "app_id": st.text(min_size=1, max_size=30),
}
property_subsets = st.fixed_dictionaries({}, optional=_property_values)


def _to_pamqp(values):
    kwargs = {("message_type" if k == "type" else k): v for k, v in values.items()}
    if "timestamp" in kwargs:
        kwargs["timestamp"] = EPOCH + datetime.timedelta(seconds=kwargs["timestamp"])
    return kwargs


@SETTINGS
@given(property_subsets, st.binary(max_size=300))
def test_properties_ours_to_pamqp(values, body):
    data = encode_content_frames(
        1, m.BasicPublish(routing_key="k"), BasicProperties(**values).encode(), body, 4096
    )
    offset = 0
    decoded = []
    while offset < len(data):
        consumed, _, value = frame.unmarshal(data[offset:])
        decoded.append(value)
        offset += consumed
    content_header = decoded[1]
    assert isinstance(content_header, pamqp_header.ContentHeader)
    assert content_header.body_size == len(body)
    expected = commands.Basic.Properties(**_to_pamqp(values))
    for attr in commands.Basic.Properties.attributes():
        assert getattr(content_header.properties, attr) == getattr(expected, attr), attr
    assert b"".join(v.value for v in decoded[2:]) == body


@SETTINGS
@given(property_subsets, st.binary(max_size=300))
def test_properties_pamqp_to_ours(values, body):
    props = commands.Basic.Properties(**_to_pamqp(values))
    data = frame.marshal(commands.Basic.Publish(routing_key="k"), 1)
    data += frame.marshal(pamqp_header.ContentHeader(0, len(body), props), 1)
    if body:
        data += frame.marshal(pamqp_body.ContentBody(body), 1)
    frames = decode_all(data, 0)
    header = frames[1]
    assert isinstance(header, HeaderFrame) and header.body_size == len(body)
    assert BasicProperties.decode(header.properties) == BasicProperties(**values)
    assert b"".join(f.payload for f in frames if isinstance(f, BodyFrame)) == body
