"""Run a broker in a background thread, for synchronous code (pika, kombu, tools).

    with run_broker_in_thread() as url:
        connection = pika.BlockingConnection(pika.URLParameters(url))

The broker runs its own trio loop in a daemon thread; leaving the block shuts
it down as `warren serve` does on SIGTERM (connections get 320
CONNECTION_FORCED) and joins the thread.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import trio

from broker.server import Broker, open_broker
from broker.settings import HTTPListener, Settings

__all__ = ["run_broker_in_thread", "BrokerThread"]


class BrokerThread:
    """A broker on its own trio loop in a thread; `.url` once started."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        data_dir: str | Path | None = None,
        config_path: str | Path | None = None,
        *,
        settings: Settings | None = None,
    ) -> None:
        self._args = (host, port, data_dir, config_path)
        if settings is not None and settings.management_tcp == HTTPListener(15672):
            # A test's broker never takes the well-known management port:
            # many run at once. (Set management_tcp to choose one.)
            settings = settings.with_overrides(management_tcp=HTTPListener(0, "127.0.0.1"))
        if settings is not None and settings.prometheus_tcp == HTTPListener(15692):
            # Nor the Prometheus one.
            settings = settings.with_overrides(prometheus_tcp=HTTPListener(0, "127.0.0.1"))
        self._settings = settings
        self._ready = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._error: BaseException | None = None
        self.broker: Broker | None = None
        self._thread = threading.Thread(target=self._run, name="warren-broker", daemon=True)

    @property
    def url(self) -> str:
        assert self.broker is not None
        return self.broker.url

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise RuntimeError("broker failed to start") from self._error

    def stop(self) -> None:
        """Stop the broker; raise if it had died of an error meanwhile (a crash
        after start would otherwise show only as refused connections)."""
        if self._token is not None and self._stop is not None:
            try:
                trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
            except trio.RunFinishedError:
                pass
        self._thread.join(timeout=10)
        if self._error is not None and self.broker is not None:
            raise RuntimeError("the broker died while running") from self._error

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as error:  # noqa: BLE001 - reported to the starter
            self._error = error
            self._ready.set()

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._stop = trio.Event()
        host, port, data_dir, config_path = self._args
        async with open_broker(
            host, port, data_dir, config_path, settings=self._settings
        ) as broker:
            self.broker = broker
            self._ready.set()
            await self._stop.wait()

    def run_sync(self, fn: Any, *args: Any) -> Any:
        """Run `fn(*args)` on the broker's trio thread (to inspect its state)."""
        assert self._token is not None
        return trio.from_thread.run_sync(fn, *args, trio_token=self._token)


@contextmanager
def run_broker_in_thread(
    host: str = "127.0.0.1",
    port: int = 0,
    data_dir: str | Path | None = None,
    config_path: str | Path | None = None,
) -> Iterator[str]:
    """Start a broker in a thread, yield its amqp URL, shut it down on exit."""
    thread = BrokerThread(host, port, data_dir, config_path)
    thread.start()
    try:
        yield thread.url
    finally:
        thread.stop()
