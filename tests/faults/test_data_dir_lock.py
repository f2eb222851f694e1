"""One broker per data directory (broker/storage/lock.py), with real processes.

A second `warren serve` on a running broker's data directory used to empty
the first one's `paging/` directory and open its journal before failing on
the port. Now it stops at the lock, before touching anything, and says who
holds it; the first broker still delivers every message, paged or journalled.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import trio
from serve_helpers import free_port, serve_command, start_serve, stop

from broker.client import open_connection

PERSISTENT = 200
TRANSIENT = 300
BODY = 4096


def _files(directory: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in sorted(directory.iterdir()) if p.is_file()}


async def _fill(url: str, paging: Path) -> None:
    async with open_connection(url) as connection:
        channel = await connection.channel()
        await channel.confirm_select()
        await channel.queue_declare("kept", durable=True)
        await channel.queue_declare("paged")
        for n in range(PERSISTENT):
            await channel.publish("", "kept", b"p%06d" % n + b"." * BODY, persistent=True,
                                  wait=False)
        for n in range(TRANSIENT):
            await channel.publish("", "paged", b"t%06d" % n + b"." * BODY, wait=False)
        await channel.wait_for_confirms()
        # The paging task writes in its own time: wait for the page files,
        # then until they stop growing (the comparison below must see the
        # first broker at rest, not still writing: under load it was not).
        with trio.fail_after(20):
            while sum(_files(paging).values()) < (TRANSIENT // 2) * BODY:
                await trio.sleep(0.05)
            seen, still = _files(paging), 0
            while still < 10:
                await trio.sleep(0.05)
                now = _files(paging)
                still = still + 1 if now == seen else 0
                seen = now


async def _drain(url: str) -> dict[str, list[bytes]]:
    got: dict[str, list[bytes]] = {"kept": [], "paged": []}
    async with open_connection(url) as connection:
        channel = await connection.channel()
        with trio.fail_after(30):
            for queue in got:
                while (message := await channel.get(queue, no_ack=True)) is not None:
                    got[queue].append(message.body[:7])
    return got


def test_a_second_broker_on_the_same_data_directory_stops_before_touching_it(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    settings = tmp_path / "warren.conf"
    # A tiny paging threshold: the transient queue's bodies go to disk.
    settings.write_text("warren.paging.queue_bytes = 16384\n")
    first, port = start_serve(tmp_path / "first.log", "--settings", str(settings),
                              "--data-dir", str(data))
    try:
        url = f"amqp://guest:guest@127.0.0.1:{port}/%2F"
        trio.run(_fill, url, data / "paging")
        page_files = _files(data / "paging")
        journal = _files(data / "journal")
        assert page_files and journal
        assert (data / ".lock").read_text().strip() == str(first.pid)

        second = subprocess.run(
            serve_command("--settings", str(settings), "--data-dir", str(data),
                          "--port", str(free_port())),
            capture_output=True, text=True, timeout=30,
        )
        assert second.returncode == 2, second.stderr
        assert (f"warren serve: data directory {data} is in use by another broker "
                f"(pid {first.pid})") in second.stderr
        assert "broker.data_dir_locked" in second.stderr
        assert "paging.cleaned" not in second.stderr
        assert "journal." not in second.stderr  # it never opened the journal

        # Nothing of the first broker's was touched: page files, segments.
        assert _files(data / "paging") == page_files
        assert _files(data / "journal") == journal
        got = trio.run(_drain, url)
        assert got["kept"] == [b"p%06d" % n for n in range(PERSISTENT)]
        assert got["paged"] == [b"t%06d" % n for n in range(TRANSIENT)]
    finally:
        stop(first)
    # The lock goes with the broker: the next one starts on the same directory.
    again, _ = start_serve(tmp_path / "again.log", "--data-dir", str(data))
    stop(again)
