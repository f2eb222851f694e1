"""Known, documented differences between Warren and the reference RabbitMQ.

Maps a conformance test id to ``(reason, issue_number)``. The id is the test's
path relative to ``conformance/tests/`` followed by ``::`` and the test name,
for example ``"test_ttl.py::test_queue_message_ttl_expires_messages"``
(parametrized tests may name one case, ``...::test_x[case]``, or all of them).

The table is applied ONLY when the broker under test identifies itself as Warren
(its ``connection.start`` server properties have a ``product`` containing
"Warren"); against any other broker every test must pass on its own. Entries
become strict xfails: a listed test that starts passing is reported as a
failure, so a fixed difference surfaces and its entry gets removed.

Every entry must also be explained in ``docs/compatibility.md``.
"""

from __future__ import annotations

KNOWN_DIFFERENCES: dict[str, tuple[str, int]] = {}


def known_difference(test_id: str) -> tuple[str, int] | None:
    """The (reason, issue) for a test id, matching a parametrized id or its base name."""
    if test_id in KNOWN_DIFFERENCES:
        return KNOWN_DIFFERENCES[test_id]
    base = test_id.split("[", 1)[0]
    return KNOWN_DIFFERENCES.get(base)
