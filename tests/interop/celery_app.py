"""The Celery application the interop test runs a real worker for.

The broker URL comes from $CELERY_BROKER_URL (set by the test); results travel
back over the same broker with the rpc:// backend (reply queues, no database).
"""

from __future__ import annotations

import os

from celery import Celery

app = Celery(
    "warren_interop",
    broker=os.environ.get("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//"),
    backend="rpc://",
)
app.conf.update(
    task_default_queue=os.environ.get("CELERY_TASK_QUEUE", "celery"),
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    worker_prefetch_multiplier=4,
    task_acks_late=True,
)


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
def fail(message: str) -> None:
    raise ValueError(message)


@app.task(bind=True, max_retries=2, default_retry_delay=0)
def flaky(self, succeed_on: int) -> int:
    """Fails until its retry number reaches succeed_on: retries go through the broker."""
    if self.request.retries < succeed_on:
        raise self.retry(countdown=0)
    return self.request.retries
