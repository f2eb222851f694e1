"""Transactions (tx.select, tx.commit, tx.rollback; AMQP 0-9-1 section 1.9) for one channel.

In a transactional channel, publishes and acknowledgements are kept here
until tx.commit, which applies them in order, or tx.rollback, which drops
the publishes and makes the acknowledged deliveries unacknowledged again.

With a journal, commit-ok is sent once the transaction's records (its
publishes, dead letters and acks) are fsynced, as RabbitMQ sends it once the
messages are durable. Meanwhile the channel is *paused*: no deliveries, and
the commands that arrive for it are held here, in order, and handled by the
connection after commit-ok, so that nothing the channel sends overtakes the
commit-ok. Other channels go on.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from broker.core.message import Message
from broker.session.acks import Taken
from protocol import methods as m
from protocol.connection import Command

__all__ = ["Transaction"]

#: Bytes a held command is counted as besides its body (the method object).
HELD_OVERHEAD = 64


class Transaction:
    """The pending work of a transactional channel, and its wait for commit-ok."""

    __slots__ = ("publishes", "acks", "commit_at", "held", "held_bytes", "deferred")

    def __init__(self) -> None:
        self.publishes: list[tuple[m.BasicPublish, Message]] = []
        #: (kind, deliveries, requeue): kind is "ack", "reject" or "nack".
        self.acks: list[tuple[str, Taken, bool]] = []
        #: The journal position commit-ok waits for (None when none is pending).
        self.commit_at: int | None = None
        #: Commands that arrived while the channel waited for commit-ok.
        self.held: deque[Command] = deque()
        self.held_bytes = 0
        #: Methods the broker itself sent meanwhile (a basic.cancel), sent after commit-ok.
        self.deferred: list[Any] = []

    def take_work(self) -> tuple[list[tuple[m.BasicPublish, Message]], list[tuple[str, Taken, bool]]]:
        """The publishes and acks to apply at tx.commit (the transaction starts anew)."""
        publishes, self.publishes = self.publishes, []
        acks, self.acks = self.acks, []
        return publishes, acks

    def acknowledged(self) -> Taken:
        """The deliveries acknowledged in this transaction, dropping them from it."""
        acks, self.acks = self.acks, []
        return [delivery for _kind, deliveries, _requeue in acks for delivery in deliveries]

    def hold(self, command: Command) -> int:
        """Keep a command that arrived while paused; the bytes it is counted as."""
        self.held.append(command)
        size = HELD_OVERHEAD + len(command.body or b"")
        self.held_bytes += size
        return size

    def release(self) -> tuple[deque[Command], int, list[Any]]:
        """(held commands, their bytes, deferred methods), emptied."""
        held, self.held = self.held, deque()
        size, self.held_bytes = self.held_bytes, 0
        deferred, self.deferred = self.deferred, []
        return held, size, deferred
