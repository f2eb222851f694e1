"""The delayed-message exchange without a socket: the type and its delay
rule (routing.exchanges.delayed), the topology's holding walk and traces,
and the held-message store of a real VHost driven by a real Timers heap
(broker.core.delayed): due order, routing by the bindings at due time, one
timer for the earliest, deletion, the x-delay swap on release."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from broker.core.delayed import HELD, released_copy
from broker.core.message import Message
from broker.core.timers import Timers
from broker.core.vhost import VHost
from protocol.properties import BasicProperties
from routing.errors import PreconditionFailed, UnknownExchangeType
from routing.exchanges.delayed import MAX_DELAY, delay_of
from routing.topology import Topology

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "headers, delay",
    [
        (None, None), ({}, None), ({"x-delay": 100}, 100), ({"x-delay": 0}, None),
        ({"x-delay": -100}, None), ({"x-delay": MAX_DELAY}, MAX_DELAY),
        ({"x-delay": MAX_DELAY + 1}, None), ({"x-delay": "250"}, 250), ({"x-delay": "-3"}, None),
        ({"x-delay": 99.9}, 99), ({"x-delay": True}, None), ({"x-delay": [1]}, None),
        ({"x-delay": None}, None),
    ],
)
def test_delay_of_reads_x_delay_as_the_plugin(headers: dict | None, delay: int | None) -> None:
    assert delay_of(headers) == delay


def test_delay_of_refuses_a_string_that_is_not_a_number() -> None:
    with pytest.raises(ValueError):
        delay_of({"x-delay": "soon"})


def _topology(kind: str = "direct") -> Topology:
    t = Topology()
    t.declare_exchange("later", "x-delayed-message", arguments={"x-delayed-type": kind})
    t.add_queue("q")
    return t


def test_declaration_is_validated_and_counted() -> None:
    t = Topology()
    with pytest.raises(PreconditionFailed):
        t.declare_exchange("x", "x-delayed-message")
    with pytest.raises(UnknownExchangeType):
        t.declare_exchange("x", "x-delayed-message", arguments={"x-delayed-type": "nope"})
    assert t.delayed_exchanges == 0
    t.declare_exchange("x", "x-delayed-message", arguments={"x-delayed-type": "fanout"})
    assert t.delayed_exchanges == 1
    t.delete_exchange("x")
    assert t.delayed_exchanges == 0


def test_route_holding_stops_at_delayed_exchanges_only_with_a_delay() -> None:
    t = _topology()
    t.bind("later", ("queue", "q"), "k")
    assert t.route_holding("later", "k", {"x-delay": 50}) == ([], ["later"], 50)
    assert t.route_holding("later", "k", {"x-delay": -50}) == (["q"], [], 0)
    assert t.route_holding("later", "k", None) == (["q"], [], 0)
    # Reached through an exchange binding: held there; other branches go on.
    t.declare_exchange("front", "fanout")
    t.add_queue("direct-copy")
    t.bind("front", ("exchange", "later"))
    t.bind("front", ("queue", "direct-copy"))
    assert t.route_holding("front", "k", {"x-delay": 50}) == (["direct-copy"], ["later"], 50)
    # Released: routes from the delayed exchange, internal or not.
    assert t.release("later", "k", {"x-delay": -50}) == ["q"]
    assert t.release("gone", "k", None) == []


def test_trace_says_the_message_would_be_delayed_and_where_it_would_go_now() -> None:
    t = _topology("topic")
    t.bind("later", ("queue", "q"), "a.*")
    trace = t.trace("later", "a.b", {"x-delay": 1500})
    assert trace.delayed == [("later", 1500)]
    assert trace.queues == ["q"]
    text = trace.describe()
    assert "delayed by 1500 ms at exchange 'later'" in text
    assert "(x-delayed-type topic, after 1500 ms)" in text
    assert t.trace("later", "a.b").delayed == []


class _Clock:
    """A VHost with a real Timers heap, run by hand."""

    def __init__(self) -> None:
        self.timers = Timers()
        self.vhost = VHost("/")
        self.vhost.timers = self.timers

    def run_until(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.timers.run_due()
            time.sleep(0.005)


def _message(body: bytes, delay: int | None, key: str = "k", **headers: object) -> Message:
    h = dict(headers)
    if delay is not None:
        h["x-delay"] = delay
    props = BasicProperties(headers=h or None)
    return Message("later", key, props.encode(), body)


def _bodies(vhost: VHost, queue: str) -> list[bytes]:
    q = vhost.queues[queue]
    return [entry.message.body for entry in list(q.ready)]


def test_the_store_releases_in_due_order_by_the_bindings_at_due_time() -> None:
    clock = _Clock()
    vhost = clock.vhost
    vhost.declare_exchange("later", "x-delayed-message", arguments={"x-delayed-type": "direct"})
    vhost.declare_queue(None, "early")
    vhost.declare_queue(None, "late")
    vhost.bind_queue(None, "early", "later", "k", {})
    for body, delay in ((b"3", 180), (b"1", 30), (b"2", 120), (b"2b", 120)):
        assert vhost.route("later", _message(body, delay)) == [HELD]
    assert len(vhost.delayed) == 4
    assert vhost.delayed.count("later") == 4
    # One deadline asked of the heap for the earliest, not one per message
    # (one more when an earlier message came after the first).
    assert len(clock.timers._heap) == 2
    clock.run_until(0.075)
    assert _bodies(vhost, "early") == [b"1"]
    vhost.unbind_queue(None, "early", "later", "k", {})
    vhost.bind_queue(None, "late", "later", "k", {})
    clock.run_until(0.15)
    assert _bodies(vhost, "late") == [b"2", b"2b", b"3"]
    assert len(vhost.delayed) == 0 and vhost.delayed.counts == {}
    # The released copy says it was delayed.
    assert vhost.queues["late"].ready[0].message.headers == {"x-delay": -120}


def test_deleting_the_exchange_drops_only_its_messages() -> None:
    clock = _Clock()
    vhost = clock.vhost
    for name in ("a", "b"):
        vhost.declare_exchange(name, "x-delayed-message", arguments={"x-delayed-type": "fanout"})
    vhost.declare_queue(None, "q")
    vhost.bind_queue(None, "q", "a", "", {})
    vhost.bind_queue(None, "q", "b", "", {})
    vhost.route("a", _message(b"from-a", 20))
    vhost.route("b", _message(b"from-b", 20))
    vhost.delete_exchange("a")
    assert vhost.delayed.counts == {"b": 1}
    clock.run_until(0.05)
    assert _bodies(vhost, "q") == [b"from-b"]


def test_released_copy_keeps_other_headers_byte_for_byte() -> None:
    message = _message(b"m", 70, other="x", n=5)
    copy = released_copy(message)
    assert copy.headers == {"other": "x", "n": 5, "x-delay": -70}
    assert BasicProperties.decode(copy.properties, 0).headers == {
        "other": "x", "n": 5, "x-delay": -70
    }
    plain = _message(b"m", None, other="x")
    assert released_copy(plain) is plain


def test_warren_route_shows_the_delay(tmp_path: Path) -> None:
    conf = tmp_path / "delayed.conf"
    conf.write_text(
        "exchange later type x-delayed-message\n    delayed-type topic\n"
        "queue out\nbind out to later key \"a.*\"\n"
    )
    run = subprocess.run(
        [sys.executable, "-m", "broker", "route", str(conf), "later", "a.b",
         "--header", "x-delay=1500"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "delayed by 1500 ms at exchange 'later'" in run.stdout
    assert "queue 'out'" in run.stdout
    run = subprocess.run(
        [sys.executable, "-m", "broker", "route", str(conf), "later", "b.b",
         "--header", "x-delay=1500"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert run.returncode == 1
    assert "delayed by 1500 ms" in run.stdout
    assert "it is not returned when published" in run.stdout
