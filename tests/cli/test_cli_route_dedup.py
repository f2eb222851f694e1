"""`warren route` says when deduplication applies, at the exchange published to
and at the queues reached, with the message's key (offline: no cache known)."""

from __future__ import annotations

from pathlib import Path

TOPOLOGY = """\
exchange orders type direct x-message-deduplication true cache-ttl 1m deduplication-header order-id
queue intake x-message-deduplication true
queue plain
bind intake to orders key new
bind plain to orders key new
"""


def test_route_names_the_dedup_key_and_what_a_duplicate_gets(warren, tmp_path: Path) -> None:
    path = tmp_path / "t.conf"
    path.write_text(TOPOLOGY)
    result = warren("route", str(path), "orders", "new", "--header", "order-id=A-1")
    assert result.returncode == 0
    notes = [line for line in result.stdout.splitlines() if line.startswith("note:")]
    assert notes == [
        "note: exchange 'orders' deduplicates on header 'order-id' (the last 128 keys, each "
        "remembered 60000 ms): key 'A-1'; if that key was seen within the window the message "
        "is dropped as a duplicate (not routed; a publisher confirm is still basic.ack)",
        "note: queue 'intake' deduplicates on header 'x-deduplication-header' (the last 128 "
        "keys, each remembered until pushed out): this message has no such header, so it is "
        "never a duplicate",
    ]


def test_no_note_without_deduplication(warren, tmp_path: Path) -> None:
    path = tmp_path / "t.conf"
    path.write_text("exchange e type fanout\nqueue q\nbind q to e\n")
    result = warren("route", str(path), "e", "", "--header", "x-deduplication-header=k")
    assert result.returncode == 0
    assert "dedup" not in result.stdout
