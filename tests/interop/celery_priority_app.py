"""The Celery application of the priority interop test (test_interop_celery.py).

Celery's `task_queue_max_priority` declares its task queue with
`x-max-priority`; `task_default_priority` is the priority of a task sent
without one. The one task appends its label to $CELERY_RECORD_PATH, so the
test reads the order in which the worker ran them.
"""

from __future__ import annotations

import os

from celery import Celery

app = Celery(
    "warren_interop_priority",
    broker=os.environ.get("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//"),
)
app.conf.update(
    task_default_queue=os.environ.get("CELERY_TASK_QUEUE", "celery-priority"),
    task_queue_max_priority=10,
    task_default_priority=5,
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    # One task at a time, acknowledged after it ran: the worker takes the
    # next one from the queue only then, so the broker's order is the order run.
    worker_prefetch_multiplier=1,
    task_acks_late=True,
)


@app.task
def record(label: str) -> None:
    with open(os.environ["CELERY_RECORD_PATH"], "a", encoding="utf-8") as out:
        out.write(label + "\n")
