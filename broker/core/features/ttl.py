"""Per-message TTL: the `expiration` property, parsed exactly as RabbitMQ parses it.

RabbitMQ reads `expiration` with Erlang's string:to_integer/1 and answers a
publish whose expiration is not a non-negative integer by closing the channel
with 406, in these words (checked against RabbitMQ 3.10.8):

    PRECONDITION_FAILED - invalid expiration 'soon': no_integer
    PRECONDITION_FAILED - invalid expiration ' 10': no_integer
    PRECONDITION_FAILED - invalid expiration '1.5': {leftover_string,".5"}
    PRECONDITION_FAILED - invalid expiration '-1': {value_negative,-1}
    PRECONDITION_FAILED - invalid expiration '1099511627776': {value_too_large,1099511627776}

while '+5' and '0010' are accepted. `parse_expiration_ms` raises ValueError
with the part after the colon; the channel turns it into the 406.

How expiry itself works (the queue keeps the entries in order and checks the
head; see broker/queue.py and docs/dead-lettering.md): the lower of the
queue's x-message-ttl and the message's expiration wins, timed from when the
message entered the queue; an expired message is never delivered; a TTL of 0
reaches only a consumer ready at that moment.
"""

from __future__ import annotations

import re
import time

from broker.core.features.arguments import MAX_EXPIRY_MS

__all__ = ["expiry_from_wall_clock", "expiry_to_wall_clock", "parse_expiration_ms"]

# Erlang's string:to_integer/1: an optional sign and ASCII digits; whatever
# follows is "leftover". (Python's int() would also take spaces, "1_000" and
# non-ASCII digits, which RabbitMQ refuses.)
_INTEGER = re.compile(r"([+-]?[0-9]+)(.*)", re.DOTALL)


def parse_expiration_ms(expiration: str) -> int:
    """The `expiration` property as milliseconds; ValueError(RabbitMQ's reason) if invalid."""
    match = _INTEGER.match(expiration)
    if match is None:
        raise ValueError("no_integer")
    digits, rest = match.groups()
    if rest:
        raise ValueError(f'{{leftover_string,"{rest}"}}')
    value = int(digits)
    if value < 0:
        raise ValueError(f"{{value_negative,{value}}}")
    if value > MAX_EXPIRY_MS:
        raise ValueError(f"{{value_too_large,{value}}}")
    return value


def expiry_to_wall_clock(expires_at: float | None) -> float | None:
    """An entry's `expires_at` (monotonic seconds) as epoch seconds, for the journal.

    The queue times expiry on the monotonic clock, which restarts with the
    process; a journal that writes this instead lets a recovered message
    expire when it would have, "timed from the original publish".
    """
    if expires_at is None:
        return None
    return time.time() + (expires_at - time.monotonic())


def expiry_from_wall_clock(epoch: float | None) -> float | None:
    """The inverse, at recovery: epoch seconds back to this process's monotonic clock."""
    if epoch is None:
        return None
    return time.monotonic() + (epoch - time.time())
