"""The client's hot-path encoders write the same bytes as protocol/'s writers."""

from hypothesis import given, settings
from hypothesis import strategies as st

from broker.client import _codec
from protocol import methods as m
from protocol.frames import FrameReader, encode_content_frames, encode_method_frame
from protocol.properties import BasicProperties

short = st.text(max_size=40)


@settings(max_examples=60, deadline=None)
@given(channel=st.integers(1, 65535), exchange=short, routing_key=short,
       mandatory=st.booleans(), body=st.binary(max_size=20000),
       frame_max=st.sampled_from([4096, 8192, 131072]))
def test_publish_matches_protocol(channel, exchange, routing_key, mandatory, body, frame_max):
    props = BasicProperties(content_type="text/plain", delivery_mode=2).encode()
    ours = _codec.encode_publish(channel, exchange, routing_key, mandatory, props, body,
                                 frame_max)
    theirs = encode_content_frames(
        channel, m.BasicPublish(exchange=exchange, routing_key=routing_key, mandatory=mandatory),
        props, body, frame_max)
    assert ours == theirs
    reader = FrameReader(frame_max)
    reader.feed(ours)
    frames = list(reader.read_frames())
    assert frames[0].method == m.BasicPublish(exchange=exchange, routing_key=routing_key,
                                              mandatory=mandatory)
    assert b"".join(f.payload for f in frames[2:]) == body


@given(channel=st.integers(1, 65535), tag=st.integers(0, 2**64 - 1), multiple=st.booleans())
@settings(max_examples=50, deadline=None)
def test_ack_matches_protocol(channel, tag, multiple):
    assert _codec.encode_ack(channel, tag, multiple) == encode_method_frame(
        channel, m.BasicAck(delivery_tag=tag, multiple=multiple))


def test_properties_from_keywords():
    raw = _codec.encode_properties(None, True, {"headers": {"a": 1}, "priority": 3})
    assert BasicProperties.decode(raw) == BasicProperties(headers={"a": 1}, priority=3,
                                                          delivery_mode=2)
    assert _codec.encode_properties(None, None, {}) == BasicProperties().encode()
    base = BasicProperties(app_id="app", delivery_mode=1)
    raw = _codec.encode_properties(base, True, {"type": "t"})
    assert BasicProperties.decode(raw) == BasicProperties(app_id="app", delivery_mode=2, type="t")
    assert base.delivery_mode == 1  # the caller's object is not changed
