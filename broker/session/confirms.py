"""Publisher confirms (RabbitMQ's `confirm.select` extension) for one channel.

Every publish on a channel in confirm mode gets the next sequence number
and owes a `basic.ack` (or a `basic.nack` when a queue refused it, as with
`x-overflow: reject-publish`). Confirms are sent once per read batch, in
publish order, coalesced: a run of acks becomes one `basic.ack` with
`multiple=true` up to its last tag. Publish order makes that exact: a
multiple ack never covers a tag that still waits.

With a journal, each owed confirm carries the journal position (`appended`)
when its message was routed; it may go only once the journal has fsynced
up to there (group commit), so a confirm for a persistent message means "on
disk" (docs/durability.md).
"""

from __future__ import annotations

from typing import Any

from protocol import methods as m

__all__ = ["PublisherConfirms"]

#: (publish sequence number, accepted by every queue, journal position).
Owed = tuple[int, bool, int]


class PublisherConfirms:
    """The confirms a channel owes, in publish order."""

    __slots__ = ("enabled", "next_seq", "owed")

    def __init__(self) -> None:
        self.enabled = False
        self.next_seq = 1
        self.owed: list[Owed] = []

    def owe(self, accepted: bool, position: int) -> bool:
        """Owe a confirm for the next publish; True if it is the first one owed
        (the connection then schedules a flush for this channel)."""
        seq = self.next_seq
        self.next_seq = seq + 1
        first = not self.owed
        self.owed.append((seq, accepted, position))
        return first

    def clear(self) -> None:
        """Forget what is owed (the channel closed: no confirms on a closed channel)."""
        self.owed = []


def confirm_methods(confirms: list[Owed]) -> list[Any]:
    """basic.ack / basic.nack for `confirms` (publish order), runs of acks coalesced."""
    methods: list[Any] = []
    run_start = None
    last_ack = None
    for seq, accepted, _position in confirms:
        if accepted:
            if run_start is None:
                run_start = seq
            last_ack = seq
            continue
        if last_ack is not None:
            methods.append(m.BasicAck(delivery_tag=last_ack, multiple=last_ack != run_start))
            run_start = last_ack = None
        methods.append(m.BasicNack(delivery_tag=seq, multiple=False, requeue=False))
    if last_ack is not None:
        methods.append(m.BasicAck(delivery_tag=last_ack, multiple=last_ack != run_start))
    return methods
