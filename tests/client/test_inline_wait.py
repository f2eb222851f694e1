"""The inline wait (broker/client/_inline.py): a task that waits for the broker's
answer sleeps on the socket itself when trio has nothing else to do.

The first group drives `InlineWaiter` over real socket pairs inside a real
trio run; the second checks, against a broker, that confirmed publishes take
the inline path and that trio's other work (deadlines, other sockets, calls
from threads) is never held up by it.
"""

from __future__ import annotations

import faulthandler
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import trio
import trio.testing

from broker.client import open_connection
from broker.client._inline import MAX_STREAK, MAX_TASKS, InlineWaiter


@pytest.fixture(autouse=True)
def watchdog() -> Iterator[None]:
    """A wait that ignored trio's deadlines would hang: fail loudly instead."""
    faulthandler.dump_traceback_later(60, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


def _pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    return a, b


# ------------------------------------------------------------ the waiter alone


def test_returns_true_when_our_socket_is_readable() -> None:
    async def main() -> None:
        ours, peer = _pair()
        waiter = InlineWaiter(ours.fileno())
        assert waiter.enabled
        await trio.testing.wait_all_tasks_blocked()  # trio's own tasks parked
        peer.send(b"x")
        assert waiter.wait_readable()
        assert waiter.hits == 1

    trio.run(main)


def test_other_ready_descriptor_hands_back_to_trio() -> None:
    async def main() -> None:
        ours, ours_peer = _pair()
        other, other_peer = _pair()
        waiter = InlineWaiter(ours.fileno())
        got: list[bytes] = []

        async def other_reader() -> None:
            await trio.lowlevel.wait_readable(other)
            got.append(other.recv(10))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(other_reader)
            await trio.testing.wait_all_tasks_blocked()
            other_peer.send(b"other")
            with trio.fail_after(5):
                started = time.monotonic()
                # Our socket is silent: this must not sleep until the deadline.
                assert not waiter.wait_readable()
                assert time.monotonic() - started < 1
            # Both ready: ours is read inline; once drained, the other still
            # pending makes the next wait hand over to trio at once.
            ours_peer.send(b"ours")
            assert waiter.wait_readable()
            ours.recv(10)
            started = time.monotonic()
            assert not waiter.wait_readable()
            assert time.monotonic() - started < 1
        assert got == [b"other"]

    trio.run(main)


def test_runnable_task_hands_back_to_trio() -> None:
    async def main() -> None:
        ours, peer = _pair()
        waiter = InlineWaiter(ours.fileno())
        peer.send(b"x")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep, 0)  # runnable, not started yet
            assert not waiter.wait_readable()
        await trio.testing.wait_all_tasks_blocked()
        assert waiter.wait_readable()

    trio.run(main)


def test_task_later_in_the_same_batch_hands_back_to_trio() -> None:
    """Two tasks woken together run in one batch, which trio has already
    taken off its run queue: the first must not sleep while the other waits
    its turn."""

    async def main() -> None:
        ours, _peer = _pair()
        waiter = InlineWaiter(ours.fileno())
        go = trio.Event()
        results: list[tuple[bool, float]] = []

        async def waiting_task() -> None:
            await go.wait()
            if results:
                return  # the second: nothing may be left to run, it would sleep
            started = time.monotonic()
            results.append((waiter.wait_readable(), time.monotonic() - started))

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(waiting_task)
                nursery.start_soon(waiting_task)
                await trio.testing.wait_all_tasks_blocked()
                go.set()
        first_ok, first_elapsed = results[0]
        assert not first_ok
        assert first_elapsed < 1

    trio.run(main)


def test_many_tasks_always_go_through_trio() -> None:
    async def main() -> None:
        ours, peer = _pair()
        waiter = InlineWaiter(ours.fileno())
        await trio.testing.wait_all_tasks_blocked()
        peer.send(b"x")
        assert waiter.wait_readable()
        async with trio.open_nursery() as nursery:
            for _ in range(MAX_TASKS):
                nursery.start_soon(trio.sleep_forever)
            await trio.testing.wait_all_tasks_blocked()
            assert not waiter.wait_readable()
            nursery.cancel_scope.cancel()
        await trio.testing.wait_all_tasks_blocked()
        assert waiter.wait_readable()

    trio.run(main)


def test_deadline_bounds_the_wait() -> None:
    async def main() -> None:
        ours, _peer = _pair()
        waiter = InlineWaiter(ours.fileno())
        await trio.testing.wait_all_tasks_blocked()
        with trio.move_on_after(0.2):
            started = time.monotonic()
            assert not waiter.wait_readable()  # poll() times out at the deadline
            elapsed = time.monotonic() - started
            assert 0.1 < elapsed < 2
        with trio.move_on_after(0.0005):
            # Under a millisecond: trio's own wait is more precise.
            started = time.monotonic()
            assert not waiter.wait_readable()
            assert time.monotonic() - started < 0.1

    trio.run(main)


def test_call_from_a_thread_wakes_the_wait() -> None:
    async def main() -> None:
        ours, _peer = _pair()
        waiter = InlineWaiter(ours.fileno())
        token = trio.lowlevel.current_trio_token()
        ran = threading.Event()
        thread = threading.Thread(
            target=lambda: (time.sleep(0.1), token.run_sync_soon(ran.set)))
        # trio's task that runs such calls must be parked on its wake-up
        # socket (registered with trio's epoll) before we sleep.
        await trio.testing.wait_all_tasks_blocked()
        thread.start()
        with trio.fail_after(10):
            started = time.monotonic()
            assert not waiter.wait_readable()
            assert time.monotonic() - started < 5
        with trio.fail_after(5):
            while not ran.is_set():  # trio runs the call once we let it
                await trio.sleep(0.001)
        thread.join()

    trio.run(main)


def test_streak_is_bounded_when_trio_has_other_work() -> None:
    """Our socket always ready first, another socket pending in trio: after
    MAX_STREAK inline waits the other one gets its turn."""

    async def main() -> None:
        ours, peer = _pair()
        other, other_peer = _pair()
        waiter = InlineWaiter(ours.fileno())
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.lowlevel.wait_readable, other)
            await trio.testing.wait_all_tasks_blocked()
            peer.send(b"x")  # stays readable: never drained
            other_peer.send(b"y")
            results = [waiter.wait_readable() for _ in range(MAX_STREAK + 1)]
            assert results == [True] * MAX_STREAK + [False]
        # Nothing else pending: a long streak goes on inline.
        await trio.testing.wait_all_tasks_blocked()
        assert all(waiter.wait_readable() for _ in range(3 * MAX_STREAK))

    trio.run(main)


def test_disabled_under_a_mock_clock() -> None:
    async def main() -> None:
        ours, _peer = _pair()
        assert not InlineWaiter(ours.fileno()).enabled

    trio.run(main, clock=trio.testing.MockClock())


def test_disabled_with_an_instrument() -> None:
    async def main() -> None:
        ours, _peer = _pair()
        assert not InlineWaiter(ours.fileno()).enabled

    trio.run(main, instruments=[trio.abc.Instrument()])


# ------------------------------------------------------------- with a broker


def test_confirmed_publishes_wait_inline(amqp_url: str, name: str) -> None:
    async def main() -> None:
        async with open_connection(amqp_url) as conn, conn.open_channel(confirms=True) as ch:
            await ch.queue_declare(name, auto_delete=True)
            assert conn._inline is not None
            before = conn._inline.hits
            for i in range(200):
                await ch.publish("", name, b"%d" % i)
            assert conn._inline.hits - before >= 100
            assert (await ch.queue_declare(name, passive=True)).message_count == 200

    trio.run(main)


def test_mock_clock_client_still_works(amqp_url: str, name: str) -> None:
    async def main() -> None:
        async with open_connection(amqp_url) as conn, conn.open_channel(confirms=True) as ch:
            assert conn._inline is None
            await ch.queue_declare(name, auto_delete=True)
            for _ in range(20):
                await ch.publish("", name, b"x")
            assert (await ch.queue_declare(name, passive=True)).message_count == 20

    # autojump_threshold=inf: virtual time only moves when the test moves it.
    trio.run(main, clock=trio.testing.MockClock())


def test_deadline_ends_a_publish_loop(amqp_url: str, name: str) -> None:
    """Every publish is answered at once, so only the deadline can stop this."""

    async def main() -> int:
        count = 0
        async with open_connection(amqp_url) as conn, conn.open_channel(confirms=True) as ch:
            await ch.queue_declare(name, auto_delete=True)
            with trio.move_on_after(0.5):
                while True:
                    await ch.publish("", name, b"x")
                    count += 1
        return count

    assert trio.run(main) > 10


def test_cancelled_scope_raises_before_waiting(amqp_url: str, name: str) -> None:
    async def main() -> None:
        async with open_connection(amqp_url) as conn, conn.open_channel(confirms=True) as ch:
            await ch.queue_declare(name, auto_delete=True)
            with trio.CancelScope() as scope:
                scope.cancel()
                await ch.publish("", name, b"x")
                raise AssertionError("publish did not raise Cancelled")  # pragma: no cover
            await ch.wait_for_confirms()  # the message was sent: its confirm comes

    trio.run(main)


def test_other_tasks_keep_their_schedule(amqp_url: str, name: str) -> None:
    """A socket another task waits on and a sleeping task both run on time
    while one task publishes confirmed messages back to back."""

    async def main() -> tuple[list[float], int]:
        lateness: list[float] = []
        ours, peer = _pair()
        stop = threading.Event()

        def send_clock() -> None:  # a byte every 10 ms, stamped with the time
            while not stop.is_set():
                peer.send(time.monotonic().hex().encode().ljust(32))
                time.sleep(0.01)

        async def receive_clock() -> None:
            while True:
                await trio.lowlevel.wait_readable(ours)
                now = time.monotonic()
                data = ours.recv(32)
                lateness.append(now - float.fromhex(data.decode().strip()))

        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await trio.sleep(0.01)
                ticks += 1

        thread = threading.Thread(target=send_clock)
        async with open_connection(amqp_url) as conn, conn.open_channel(confirms=True) as ch:
            await ch.queue_declare(name, auto_delete=True)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(receive_clock)
                nursery.start_soon(ticker)
                thread.start()
                try:
                    deadline = trio.current_time() + 1.0
                    while trio.current_time() < deadline:
                        await ch.publish("", name, b"x")
                finally:
                    stop.set()
                    thread.join()
                nursery.cancel_scope.cancel()
        return lateness, ticks

    lateness, ticks = trio.run(main)
    assert len(lateness) >= 50
    # Bytes are picked up as they come, not after the publishing is over
    # (generous bounds: the machine is small and shared).
    lateness.sort()
    assert lateness[len(lateness) // 2] < 0.05
    assert ticks >= 40
