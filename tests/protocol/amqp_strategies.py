"""Hypothesis strategies for AMQP values, methods, properties and frame streams."""

import datetime
import decimal

from hypothesis import strategies as st

from protocol import methods as m
from protocol.fields import Timestamp
from protocol.properties import BasicProperties

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)

short_strings = st.text(max_size=60)  # at most 240 UTF-8 bytes
keys = st.text(max_size=40)

scalar_values = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False),
    st.builds(
        lambda mantissa, scale: decimal.Decimal(mantissa).scaleb(-scale),
        st.integers(-(2**31), 2**31 - 1),
        st.integers(0, 30),
    ),
    st.text(max_size=80),
    # bytes that are not UTF-8 stay bytes when decoded (0xff never is UTF-8)
    st.binary(max_size=40).map(lambda b: b"\xff" + b),
    st.binary(max_size=40).map(bytearray),
    st.integers(0, 253402300799).map(lambda s: EPOCH + datetime.timedelta(seconds=s)),
    st.integers(253402300800, 2**64 - 1).map(Timestamp),
    st.none(),
)

field_values = st.recursive(
    scalar_values,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(keys, children, max_size=5),
    ),
    max_leaves=25,
)
field_tables = st.dictionaries(keys, field_values, max_size=8)

_ARG_STRATEGIES = {
    "octet": st.integers(0, 255),
    "short": st.integers(0, 65535),
    "long": st.integers(0, 2**32 - 1),
    "longlong": st.integers(0, 2**64 - 1),
    "bit": st.booleans(),
    "shortstr": short_strings,
    "longstr": st.text(max_size=200),
    "binary": st.binary(max_size=200),
    "table": field_tables,
}


def method_strategy(cls, arg_strategies=None, tables=field_tables):
    """A strategy for instances of one method class with random arguments."""
    strategies = dict(_ARG_STRATEGIES, table=tables, **(arg_strategies or {}))
    for class_id, _, methods in m.SPEC:
        for method_id, _, _, _, args in methods:
            if (class_id, method_id) == (cls.CLASS_ID, cls.METHOD_ID):
                kwargs = {
                    name: strategies[kind]
                    for name, kind, _ in args
                    if not name.startswith("reserved")
                }
                return st.builds(cls, **kwargs)
    raise LookupError(cls)


any_method = st.sampled_from(list(m.METHODS.values())).flatmap(method_strategy)

_PROPERTY_STRATEGIES = {
    "content_type": short_strings,
    "content_encoding": short_strings,
    "headers": field_tables,
    "delivery_mode": st.integers(0, 255),
    "priority": st.integers(0, 255),
    "correlation_id": short_strings,
    "reply_to": short_strings,
    "expiration": short_strings,
    "message_id": short_strings,
    "timestamp": st.integers(0, 2**64 - 1),
    "type": short_strings,
    "user_id": short_strings,
    "app_id": short_strings,
    "cluster_id": short_strings,
}

properties = st.fixed_dictionaries(
    {}, optional=_PROPERTY_STRATEGIES
).map(lambda kwargs: BasicProperties(**kwargs))
