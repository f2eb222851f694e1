"""A connection's output: bytes appended synchronously, sent by one writer task.

Everything the broker sends a client (replies, deliveries for its consumers,
confirms) is appended here by synchronous code, never awaited: the publish
hot path of *another* connection may be what delivers to this one. The
writer task sends the whole buffer with one `send_all` (writes are coalesced
per batch).

Memory is bounded by `high_water` (buffered bytes plus those in flight): at
or above it, `can_deliver()` says no, so queues keep the messages meant for
this connection's consumers, and the connection's reader waits in
`wait_below_high_water()` before reading more (TCP backpressure on a client
whose own replies back up). When the writer has drained a paused buffer it
calls `on_resume` so that dispatch starts again.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

__all__ = ["OUTPUT_HIGH_WATER", "Output"]

#: Output bytes buffered per connection before dispatch to it pauses and
#: reading from it stops. RabbitMQ's equivalent is its per-connection credit
#: flow; 4 MiB keeps a slow consumer's cost bounded and a fast one busy.
OUTPUT_HIGH_WATER = 4 * 1024 * 1024


class Output:
    """The output buffer of one connection and its writer."""

    def __init__(self, stream: trio.abc.Stream, high_water: int = OUTPUT_HIGH_WATER) -> None:
        self.stream = stream
        self.high_water = high_water
        self._buffer = bytearray()
        self._in_flight = 0
        self._has_output = trio.Event()
        self._drained = trio.Event()
        self._dispatch_paused = False
        #: Set by the writer when the peer is gone (the stream broke).
        self.broken = False
        #: Bytes handed to the stream so far (counted per send, not per write).
        self.bytes_sent = 0
        #: Called after a drain that follows a refused delivery (`can_deliver`).
        self.on_resume: Callable[[], None] | None = None
        #: Called once when the stream breaks.
        self.on_broken: Callable[[], None] | None = None
        #: Statistics: bytes handed to the stream, and how many sends.
        self.send_oct = 0
        self.send_cnt = 0

    def write(self, data: bytes) -> None:
        """Queue bytes for the writer (never blocks, never awaits)."""
        self._buffer += data
        self._has_output.set()

    @property
    def pending(self) -> int:
        """Bytes not yet handed to the kernel (buffered plus in flight)."""
        return len(self._buffer) + self._in_flight

    def below_high_water(self) -> bool:
        return len(self._buffer) + self._in_flight < self.high_water

    def can_deliver(self) -> bool:
        """Below the high-water mark? Otherwise queues keep our consumers' messages."""
        if len(self._buffer) + self._in_flight < self.high_water:
            return True
        self._dispatch_paused = True
        return False

    async def run_writer(self) -> None:
        """The writer task: send whatever is buffered, until the stream breaks."""
        stream = self.stream
        while True:
            await self._has_output.wait()
            self._has_output = trio.Event()
            while self._buffer:
                data = self._buffer
                self._buffer = bytearray()
                self._in_flight = len(data)
                try:
                    await stream.send_all(data)
                    self.bytes_sent += len(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    self._in_flight = 0
                    self.broken = True
                    self._drained.set()  # nothing more will be sent: wake waiters
                    if self.on_broken is not None:
                        self.on_broken()
                    return
                self._in_flight = 0
                self.send_oct += len(data)
                self.send_cnt += 1
            self._drained.set()
            self._drained = trio.Event()
            if self._dispatch_paused:
                self._dispatch_paused = False
                if self.on_resume is not None:
                    self.on_resume()

    async def wait_below_high_water(self) -> None:
        """Wait until the writer has brought the buffer under the high-water mark."""
        while len(self._buffer) + self._in_flight >= self.high_water:
            await self._drained.wait()

    async def wait_flushed(self) -> None:
        """Wait until everything written so far has been sent (or the stream broke)."""
        while (self._buffer or self._in_flight) and not self.broken:
            await self._drained.wait()
