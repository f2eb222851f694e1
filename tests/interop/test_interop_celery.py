"""A real Celery worker (a subprocess) executes tasks through the broker; results
come back over it with the rpc:// backend."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pika
import pytest

HERE = Path(__file__).resolve().parent
RESULT_TIMEOUT = 30


@pytest.fixture
def worker(interop_url, tmp_path):
    """Start `celery worker` against the broker; yield the app bound to the same URL."""
    queue = f"interop.celery.{uuid.uuid4().hex[:10]}"
    env = {
        **os.environ,
        "CELERY_BROKER_URL": interop_url,
        "CELERY_TASK_QUEUE": queue,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    command = [
        sys.executable, "-m", "celery", "-A", "celery_app", "worker",
        "--pool=solo", "--concurrency=1", "--loglevel=INFO",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
        "-Q", queue, "-n", f"interop-{queue}@%h",
    ]  # fmt: skip
    log_path = tmp_path / "celery-worker.log"
    log = log_path.open("wb")
    process = subprocess.Popen(command, cwd=HERE, env=env, stdout=log, stderr=subprocess.STDOUT)

    os.environ["CELERY_BROKER_URL"] = env["CELERY_BROKER_URL"]
    os.environ["CELERY_TASK_QUEUE"] = queue
    sys.path.insert(0, str(HERE))
    try:
        import celery_app

        celery_app.app.conf.broker_url = env["CELERY_BROKER_URL"]
        celery_app.app.conf.task_default_queue = queue
        yield celery_app, process, log_path
    finally:
        sys.path.remove(str(HERE))
        # Celery's own shutdown takes seconds; the tasks are done, so a short
        # grace period, then SIGKILL (the broker requeues anything unacked).
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.close()
        celery_app.app.close()
        delete_queue(interop_url, queue)


def delete_queue(amqp_url: str, queue: str) -> None:
    """Celery declares its task queue durable: remove it so reruns leave nothing behind."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        connection.channel().queue_delete(queue)
    finally:
        connection.close()


def worker_log(path: Path) -> str:
    return path.read_text(errors="replace")[-4000:] if path.exists() else ""


def test_worker_executes_tasks_and_returns_results(worker):
    module, process, log_path = worker
    started = time.monotonic()
    results = [module.add.delay(i, i) for i in range(10)]
    try:
        values = [r.get(timeout=RESULT_TIMEOUT) for r in results]
    except Exception as exc:  # noqa: BLE001 - show the worker's side too
        pytest.fail(f"{exc!r}; worker exit={process.poll()}; log:\n{worker_log(log_path)}")
    assert values == [2 * i for i in range(10)]
    assert time.monotonic() - started < RESULT_TIMEOUT


def test_task_exception_comes_back_to_caller(worker):
    module, _, _ = worker
    result = module.fail.delay("boom")
    with pytest.raises(ValueError, match="boom"):
        result.get(timeout=RESULT_TIMEOUT)
    assert result.state == "FAILURE"


def test_retried_task_eventually_succeeds(worker):
    module, _, _ = worker
    assert module.flaky.delay(2).get(timeout=RESULT_TIMEOUT) == 2


def test_higher_priority_tasks_run_first(interop_url, tmp_path):
    """Celery's task_queue_max_priority / task_default_priority on an x-max-priority queue.

    Nine tasks are queued (the producer declares the queue with
    x-max-priority 10) before any worker runs: three at priority 1, three
    without a priority (task_default_priority, 5), three at 9, interleaved.
    A worker started afterwards runs the 9s, then the 5s, then the 1s, each
    level in the order sent.
    """
    queue = f"interop.celery.priority.{uuid.uuid4().hex[:10]}"
    record_path = tmp_path / "ran.txt"
    env = {
        **os.environ,
        "CELERY_BROKER_URL": interop_url,
        "CELERY_TASK_QUEUE": queue,
        "CELERY_RECORD_PATH": str(record_path),
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    sys.path.insert(0, str(HERE))
    try:
        import celery_priority_app

        app = celery_priority_app.app
        app.conf.broker_url = interop_url
        app.conf.task_default_queue = queue
        sent = []
        for round_ in range(3):
            for priority in (1, None, 9):
                label = f"p{priority or 'default'}-{round_}"
                options = {} if priority is None else {"priority": priority}
                celery_priority_app.record.apply_async((label,), **options)
                sent.append(label)
    finally:
        sys.path.remove(str(HERE))
    log_path = tmp_path / "celery-worker.log"
    command = [
        sys.executable, "-m", "celery", "-A", "celery_priority_app", "worker",
        "--pool=solo", "--concurrency=1", "--loglevel=INFO",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
        "-Q", queue, "-n", f"interop-{queue}@%h",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=HERE, env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + RESULT_TIMEOUT
            ran: list[str] = []
            while len(ran) < len(sent):
                if time.monotonic() > deadline:
                    pytest.fail(f"ran {ran}; worker exit={process.poll()}; log:\n"
                                f"{worker_log(log_path)}")
                time.sleep(0.05)
                if record_path.exists():
                    ran = record_path.read_text().split()
        finally:
            process.send_signal(signal.SIGQUIT)
            try:
                process.wait(timeout=1)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
            app.close()
            delete_queue(interop_url, queue)
    assert ran == [
        "p9-0", "p9-1", "p9-2",
        "pdefault-0", "pdefault-1", "pdefault-2",
        "p1-0", "p1-1", "p1-2",
    ]
