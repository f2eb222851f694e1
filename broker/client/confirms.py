"""Publisher confirms (RabbitMQ's confirm.select extension) on one channel.

After confirm.select the broker numbers our publishes 1, 2, 3... on that
channel and answers each with basic.ack or basic.nack, possibly several at
once with ``multiple`` (https://www.rabbitmq.com/confirms.html). A mandatory
message that reaches no queue comes back in basic.return *before* its
basic.ack, so the ack of a returned message resolves as `Unroutable`.
"""

from __future__ import annotations

from collections import deque

import trio

from .errors import PublishFailed, PublishNacked, Unroutable


class Confirmation:
    """The broker's answer to one confirmed publish; ``await c.wait()`` for it."""

    __slots__ = ("delivery_tag", "done", "error", "_event", "_return_key", "_observed")

    def __init__(self, delivery_tag: int) -> None:
        self.delivery_tag = delivery_tag
        self.done = False
        self.error: BaseException | None = None
        self._event: trio.Event | None = None
        # (exchange, routing_key, body) for mandatory publishes, to match basic.return
        self._return_key: tuple[str, str, bytes] | None = None
        self._observed = False

    async def wait(self) -> None:
        """Return once the broker confirmed; raise `PublishNacked`, `Unroutable`,
        or `ChannelClosed`/`ConnectionClosed` if the channel died first."""
        if not self.done:
            if self._event is None:
                self._event = trio.Event()
            await self._event.wait()
        self._observed = True
        if self.error is not None:
            raise self.error

    def _resolve(self, error: BaseException | None) -> None:
        self.done = True
        self.error = error
        if self._event is not None:
            self._event.set()


class ConfirmTracker:
    """The unconfirmed publishes of one channel, by delivery tag."""

    def __init__(self) -> None:
        self.next_tag = 1
        self._pending: dict[int, Confirmation] = {}
        self._low = 1  # every tag below this one is resolved
        self._mandatory: deque[Confirmation] = deque()
        self._unobserved_failures: list[Confirmation] = []
        self._idle: trio.Event | None = None
        self._window: trio.Event | None = None
        self._window_size = 0

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, return_key: tuple[str, str, bytes] | None) -> Confirmation:
        tag = self.next_tag
        self.next_tag = tag + 1
        conf = Confirmation(tag)
        self._pending[tag] = conf
        if return_key is not None:
            conf._return_key = return_key
            self._mandatory.append(conf)
        return conf

    def on_ack(self, tag: int, multiple: bool) -> None:
        self._settle(tag, multiple, nacked=False)

    def on_nack(self, tag: int, multiple: bool) -> None:
        self._settle(tag, multiple, nacked=True)

    def on_return(self, reply_code: int, reply_text: str, exchange: str, routing_key: str,
                  body: bytes) -> bool:
        """Attach a basic.return to the publish it belongs to; False if none matches.

        basic.return does not carry the publish sequence number, so we match
        the earliest unconfirmed mandatory publish with the same exchange,
        routing key and body. Returns come in publish order, so this picks
        the right one unless two identical messages race with a binding change.
        """
        for conf in self._mandatory:
            if conf.done or conf.error is not None:
                continue
            if conf._return_key == (exchange, routing_key, body):
                conf.error = Unroutable(reply_code, reply_text, exchange, routing_key,
                                        conf.delivery_tag)
                return True
        return False

    def _settle(self, tag: int, multiple: bool, nacked: bool) -> None:
        pending = self._pending
        if multiple:
            low = self._low
            while low <= tag:
                conf = pending.pop(low, None)
                if conf is not None:
                    self._finish(conf, nacked)
                low += 1
            self._low = low
        else:
            conf = pending.pop(tag, None)
            if conf is not None:
                self._finish(conf, nacked)
            if tag == self._low:
                low = tag + 1
                while low < self.next_tag and low not in pending:
                    low += 1
                self._low = low
        if self._mandatory:
            mandatory = self._mandatory
            while mandatory and mandatory[0].done:
                mandatory.popleft()
        if not pending and self._idle is not None:
            self._idle.set()
            self._idle = None
        if self._window is not None and len(pending) < self._window_size:
            self._window.set()
            self._window = None

    def _finish(self, conf: Confirmation, nacked: bool) -> None:
        error = conf.error  # set already if basic.return came first
        if nacked and error is None:
            error = PublishNacked(f"the broker nacked publish {conf.delivery_tag}",
                                  conf.delivery_tag)
        conf._resolve(error)
        if error is not None and conf._event is None:
            # Nobody is waiting on it now; wait_for_confirms will raise it.
            self._unobserved_failures.append(conf)

    def fail_all(self, error: BaseException) -> None:
        """The channel closed: every unconfirmed publish raises ``error``."""
        for conf in self._pending.values():
            conf._resolve(error)
            if conf._event is None:
                self._unobserved_failures.append(conf)
        self._pending.clear()
        self._mandatory.clear()
        if self._idle is not None:
            self._idle.set()
            self._idle = None
        if self._window is not None:
            self._window.set()
            self._window = None

    async def wait_for_window(self, size: int) -> None:
        while len(self._pending) >= size:
            if self._window is None:
                self._window = trio.Event()
            self._window_size = size
            await self._window.wait()

    async def wait_all(self) -> None:
        """Wait until nothing is unconfirmed; raise the first unobserved failure."""
        while self._pending:
            if self._idle is None:
                self._idle = trio.Event()
            await self._idle.wait()
        failures = [c for c in self._unobserved_failures if not c._observed]
        self._unobserved_failures.clear()
        if failures:
            first = failures[0].error
            assert first is not None
            if isinstance(first, PublishFailed) and len(failures) > 1:
                first.add_note(f"{len(failures)} publishes failed in all; delivery tags "
                               f"{[c.delivery_tag for c in failures][:20]}")
            for conf in failures:
                conf._observed = True
            raise first
