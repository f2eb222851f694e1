"""A consumer: an async iterator over the deliveries of one basic.consume."""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol

import trio

from protocol import methods as m

from .errors import ConsumerCancelled
from .message import Message


class ConsumerChannel(Protocol):
    """What a consumer uses of its channel (`broker.client.channel.Channel`)."""

    _consumers: dict[str, Any]

    @property
    def is_open(self) -> bool: ...

    async def _rpc(self, method: m.Method, expect: tuple[type, ...]) -> Any: ...

    async def basic_nack(
        self, delivery_tag: int, multiple: bool = False, requeue: bool = True
    ) -> None: ...

# Yield to the scheduler after this many messages handed out from the buffer
# without waiting, so a busy consumer cannot starve the connection's writer
# (its acks would pile up) or other tasks. A checkpoint costs ~6 us, so we do
# not pay it per message.
_CHECKPOINT_EVERY = 128


class Consumer:
    """Deliveries of one consumer, in order. Iterate it with ``async for``.

    The connection's reader appends deliveries to a buffer (bounded by the
    prefetch count the broker honours) and wakes the iterating task only when
    it is waiting, so a burst of deliveries read from the socket at once costs
    one wake-up, not one per message.
    """

    def __init__(
        self, channel: ConsumerChannel, queue: str, consumer_tag: str, no_ack: bool
    ) -> None:
        self.channel = channel
        self.queue = queue
        self.consumer_tag = consumer_tag
        self.no_ack = no_ack
        self._buffer: deque[Message] = deque()
        self._waiter: trio.Event | None = None
        self._error: BaseException | None = None
        self._finished = False
        self._cancel_ok: trio.Event | None = None
        self._handed_out = 0
        # Hand out buffered deliveries before raising the error: true when
        # they can still be used (no_ack, or the channel is still open).
        self._drain_first = no_ack

    def __aiter__(self) -> Consumer:
        return self

    async def __anext__(self) -> Message:
        buffer = self._buffer
        if buffer and (self._error is None or self._drain_first):
            self._handed_out += 1
            if self._handed_out % _CHECKPOINT_EVERY == 0:
                await trio.lowlevel.checkpoint()
                if not buffer:
                    return await self.__anext__()
            return buffer.popleft()
        while True:
            if self._error is not None:
                if buffer and self._drain_first:
                    return buffer.popleft()
                # With manual acks on a closed channel the buffered deliveries
                # cannot be acked; the broker requeues them, so raise now.
                raise self._error
            if buffer:
                return buffer.popleft()
            if self._finished:
                raise StopAsyncIteration
            waiter = self._waiter = trio.Event()
            await waiter.wait()

    async def get(self) -> Message:
        """The next delivery (same as ``await anext(consumer)``)."""
        return await self.__anext__()

    def _push(self, message: Message) -> None:
        self._buffer.append(message)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            waiter.set()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            waiter.set()

    async def cancel(self) -> None:
        """basic.cancel; deliveries not yet handed out go back to the queue."""
        channel = self.channel
        if not self._finished and self._error is None and channel.is_open:
            self._cancel_ok = trio.Event()
            try:
                await channel._rpc(m.BasicCancel(consumer_tag=self.consumer_tag),
                                   (m.BasicCancelOk,))
            except Exception:
                pass  # channel or connection gone: nothing left to cancel
        self._finished = True
        channel._consumers.pop(self.consumer_tag, None)
        if self._buffer and not self.no_ack and channel.is_open:
            # Requeue what the application never saw, in one basic.nack
            # per message (tags may interleave with other consumers').
            for message in self._buffer:
                try:
                    await channel.basic_nack(message.delivery_tag, False, True)
                except Exception:
                    break
            self._buffer.clear()
        self._wake()

    def _on_cancel_ok(self) -> None:
        self._finished = True
        self._wake()

    def _on_cancelled_by_broker(self) -> None:
        self._error = ConsumerCancelled(self.consumer_tag)
        self._drain_first = True
        self._wake()

    def _on_channel_closed(self, error: BaseException) -> None:
        self._error = error
        self._wake()
