"""Property: whatever queues do, recovery gives back exactly the live persistent messages.

Random operations on real `Queue` objects with a journal (publish persistent
or transient, deliver, ack, requeue, purge, delete and redeclare a queue,
compaction, waiting for the disk), tiny segments so that rolls, deletion and
compaction all happen; then a clean close and `recover()`. Recovery must give
every queue its live persistent messages (ready or delivered-unacked) in
publish order, with `delivered` set for those handed out, and nothing else.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.core.message import Message
from broker.core.queue import Queue
from broker.storage import Journal
from broker.storage.entries import PersistedEntry
from broker.storage.recovery import recover
from protocol.properties import BasicProperties

PERSISTENT = BasicProperties(delivery_mode=2).encode()
TRANSIENT = BasicProperties(delivery_mode=1).encode()
QUEUES = ("a", "b")

# Publishes and deliveries are drawn most often, so that scripts end with
# live messages, delivered ones among them; the destructive operations are rarer.
KINDS = (
    ["publish"] * 10 + ["get"] * 4 + ["ack"] * 2 + ["requeue", "sync", "compact", "purge", "delete"]
)
ops = st.lists(
    st.tuples(
        st.sampled_from(KINDS),
        st.sampled_from(QUEUES),
        st.booleans(),  # persistent
        st.integers(0, 300),  # body size
        st.integers(0, 50),  # which unacked delivery
    ),
    min_size=20,
    max_size=100,
)


async def synced(journal: Journal) -> None:
    while journal.synced < journal.appended or journal.has_pending():
        await trio.sleep(0)


def run_ops(directory: Path, script: list[tuple]) -> dict[str, list[tuple[bytes, bool]]]:
    """Apply `script`; the expected recovery: per queue, (body, delivered) in order."""
    expected: dict[str, list[tuple[bytes, bool]]] = {}

    async def main() -> None:
        journal = Journal(directory, segment_size=512)
        journal.page_after = 3
        queues = {}
        for name in QUEUES:
            queues[name] = Queue(name, durable=True)
            queues[name].journal = journal
        unacked: list[tuple[Queue, PersistedEntry]] = []
        counter = 0
        async with trio.open_nursery() as nursery:
            await nursery.start(journal.run)
            for op in script:
                kind, name, persistent, size, index = op
                if kind == "publish":
                    counter += 1
                    body = b"%d:" % counter + b"x" * size
                    queues[name].enqueue(
                        Message("", name, PERSISTENT if persistent else TRANSIENT, body)
                    )
                elif kind == "get":
                    queue = queues[name]
                    entry = queue.get()
                    if entry is not None:
                        journal.delivered(entry, False)
                        unacked.append((queue, entry))
                elif kind in ("ack", "requeue") and unacked:
                    queue, entry = unacked.pop(index % len(unacked))
                    if kind == "ack":
                        journal.forget(entry)
                    else:
                        queue.requeue([entry])
                elif kind == "purge":
                    queues[name].purge()
                elif kind == "delete":
                    old = queues[name]
                    old.purge()
                    old.deleted = True
                    journal.queue_deleted(old)
                    queues[name] = Queue(name, durable=True)
                    queues[name].journal = journal
                    # Its unacked deliveries are never settled here (as after a
                    # crash): only the QUEUE_DELETE record keeps them from coming back.
                    unacked[:] = [u for u in unacked if u[0] is not old]
                elif kind == "sync":
                    await synced(journal)
                elif kind == "compact":
                    journal.compact_oldest()
            for name, queue in queues.items():
                live = [e for e in queue.ready if isinstance(e, PersistedEntry)]
                live += [e for q, e in unacked if q is queue and isinstance(e, PersistedEntry)]
                live.sort(key=lambda e: e.msg_id)
                expected[name] = [(e.message.body, e.delivered) for e in live]
            await journal.close()
            nursery.cancel_scope.cancel()

    trio.run(main)
    return expected


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(ops)
def test_recovery_gives_back_exactly_the_live_persistent_messages(script: list[tuple]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        expected = run_ops(directory, script)
        recovered = recover(directory)
        reader = Journal(directory, recovered=recovered)
        got = {
            name: [
                (reader.load(e.segment, e.offset).body, bool(e.delivered))
                for e in recovered.queues.get(("/", name), [])
            ]
            for name in QUEUES
        }
        assert got == {name: expected.get(name, []) for name in QUEUES}
        assert recovered.records_lost == 0 and recovered.damaged_stretches == 0
