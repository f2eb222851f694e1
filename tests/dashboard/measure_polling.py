"""What the dashboard's polling costs a busy broker, as a fraction of one core.

    .venv/bin/python tests/dashboard/measure_polling.py [--queues 1000] [--rate 500]

A measurement that prints numbers, not a timed test (CONTRIBUTING.md,
"Benchmarks"). It starts a Warren in a process of its own, declares
`--queues` queues bound to a topic exchange, and keeps traffic going from
another process (`--rate` messages a second with publisher confirms, spread
over a tenth of the queues, a consumer acking a tenth of those; the other
queues fill up). Then:

1. the broker's CPU with the traffic alone (the baseline, per second);
2. per page of the dashboard, the requests one poll of that page makes,
   taken from a real headless Chromium showing the page (the fetches the
   page itself sent), replayed `--polls` times back to back as the browser
   sends them (Basic credentials, gzip): the broker's CPU per poll, above
   the baseline, and what that is at one poll every 5 s (the default);
3. end to end: Chromium showing the queues page (and then the overview)
   with the default 5 s refresh for `--seconds`: the broker's CPU above the
   baseline. Noisier than 2 (the traffic's own CPU varies), but it is the
   dashboard as it runs.

The broker's CPU is its process's (all threads) from /proc/PID/stat. Needs
the statistics endpoints (GET /api/queues); with Chromium absent, step 2
uses the page's requests as written in the dashboard's JS and step 3 is
skipped.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

from dashboard_helpers import Browser, Dashboard, call, chromium_missing  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
AUTH = "Basic " + base64.b64encode(b"guest:guest").decode()

#: The pages measured, by dashboard route; the queue page shows one busy queue.
PAGES = ["#/overview", "#/queues", "#/queues/%2F/load-0", "#/exchanges", "#/connections",
         "#/channels", "#/consumers"]

#: Step 2 without a browser: the requests as pages/*.js write them.
FALLBACK_REQUESTS = {
    "#/overview": ["/api/overview", "/api/cluster"],
    "#/queues": ["/api/queues?page=1&page_size=50&sort=name&columns=name%2Cvhost%2Ctype%2Cstate"
                 "%2Cdurable%2Cauto_delete%2Cexclusive%2Carguments%2Cpolicy%2Cconsumers"
                 "%2Cmessages_ready%2Cmessages_unacknowledged%2Cmessages"
                 "%2Cmessage_stats.publish_details.rate%2Cmessage_stats.deliver_get_details.rate"
                 "%2Cmessage_stats.ack_details.rate"],
    "#/queues/%2F/load-0": ["/api/queues/%2F/load-0", "/api/queues/%2F/load-0/bindings"],
    "#/exchanges": ["/api/exchanges?page=1&page_size=50&sort=name"],
    "#/connections": ["/api/connections?page=1&page_size=50&sort=name"],
    "#/channels": ["/api/channels?page=1&page_size=50&sort=name"],
    "#/consumers": ["/api/consumers"],
}

BROKER = textwrap.dedent("""
    import json, sys, time
    from broker.testing import BrokerThread
    thread = BrokerThread(data_dir=sys.argv[1])
    thread.start()
    print(json.dumps([thread.url, thread.broker.management_url]), flush=True)
    while True:
        time.sleep(3600)
""")

TRAFFIC = textwrap.dedent("""
    import random, sys, time, pika
    url, queues, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    published = [f"load.{i}" for i in range(0, queues, 10)]  # a tenth of the queues
    publisher = pika.BlockingConnection(pika.URLParameters(url))
    out = publisher.channel()
    out.confirm_delivery()
    consumer = pika.BlockingConnection(pika.URLParameters(url))
    into = consumer.channel()
    into.basic_qos(prefetch_count=100)
    for i in range(0, queues, 100):  # a consumer on a tenth of those
        into.basic_consume(f"load-{i}", lambda ch, m, p, b: ch.basic_ack(m.delivery_tag))
    batch = 10
    start = time.monotonic()
    sent = 0
    while True:
        for _ in range(batch):
            out.basic_publish("load", random.choice(published), b"x" * 100)
        sent += batch
        consumer.process_data_events(time_limit=0)
        ahead = sent / rate - (time.monotonic() - start)
        if ahead > 0:
            consumer.process_data_events(time_limit=ahead)
""")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def measure(pid: int, seconds: float) -> float:
    """The process's CPU over `seconds` of wall time, as a fraction of one core."""
    before, start = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) / (time.monotonic() - start)


def declare(url: str, queues: int) -> None:
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.exchange_declare("load", "topic")
    for i in range(queues):
        channel.queue_declare(f"load-{i}")
        channel.queue_bind(f"load-{i}", "load", f"load.{i}")
    connection.close()


def poll_requests(management_url: str) -> dict[str, list[str]]:
    """Per page, the requests one poll makes, as the dashboard in Chromium sends them."""
    downloads = Path(tempfile.mkdtemp())
    browser = Browser(downloads)
    try:
        dash = Dashboard(browser, management_url, downloads)
        dash.reset(refresh_ms=60_000)  # one poll per page: the one on arrival
        dash.login(hash_="#/admin")
        found = {}
        for page in PAGES:
            dash.driver.execute_script("window.__warrenFetches = []")
            dash.go(page)
            time.sleep(1.0)
            found[page] = [f.split(" ", 1)[1] for f in dash.fetches() if f.startswith("GET ")]
        return found
    finally:
        browser.quit()


def replay(management_url: str, paths: list[str], polls: int) -> float:
    """Send one poll's requests `polls` times over one kept-alive connection; the wall time."""
    host, port = management_url.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    headers = {"Authorization": AUTH, "Accept": "application/json",
               "Accept-Encoding": "gzip, deflate, br"}
    start = time.monotonic()
    for _ in range(polls):
        for path in paths:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            response.read()
            assert response.status == 200, (path, response.status)
    connection.close()
    return time.monotonic() - start


def end_to_end(management_url: str, page: str, seconds: float, pid: int, baseline: float) -> tuple[float, int]:
    downloads = Path(tempfile.mkdtemp())
    browser = Browser(downloads)
    try:
        dash = Dashboard(browser, management_url, downloads)
        dash.reset(refresh_ms=5000)  # the default
        dash.login(hash_=page)
        time.sleep(1.0)
        dash.driver.execute_script("window.__warrenFetches = []")
        used = measure(pid, seconds)
        return used - baseline, len(dash.fetches())
    finally:
        browser.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queues", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=500, help="messages per second")
    parser.add_argument("--polls", type=int, default=40, help="polls replayed per page")
    parser.add_argument("--seconds", type=float, default=30, help="each end-to-end run")
    parser.add_argument("--baseline", type=float, default=20, help="seconds of baseline")
    args = parser.parse_args()

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    data = tempfile.mkdtemp(prefix="warren-measure-")
    broker = subprocess.Popen([sys.executable, "-c", BROKER, data], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    traffic: subprocess.Popen[Any] | None = None
    try:
        assert broker.stdout is not None
        amqp_url, management_url = json.loads(broker.stdout.readline())
        if call(management_url, "GET", "/api/queues")[0] == 404:
            sys.exit("this Warren does not serve GET /api/queues: nothing to measure yet")
        print(f"broker pid {broker.pid}; declaring {args.queues} queues...", flush=True)
        declare(amqp_url, args.queues)
        traffic = subprocess.Popen([sys.executable, "-c", TRAFFIC, amqp_url, str(args.queues),
                                    str(args.rate)], cwd=ROOT, env=env)
        time.sleep(8)  # rates settle (the statistics sample every 5 s)
        overview = call(management_url, "GET", "/api/overview")[1]
        print(f"traffic: publish {overview['message_stats']['publish_details']['rate']:.0f}/s, "
              f"deliver {overview['message_stats'].get('deliver_get_details', {}).get('rate', 0):.0f}/s, "
              f"{overview['queue_totals']['messages']} messages queued, "
              f"{overview['object_totals']['queues']} queues")

        baseline = measure(broker.pid, args.baseline)
        print(f"\n1. broker CPU, traffic alone: {baseline:.1%} of a core ({args.baseline:.0f} s)")

        missing = chromium_missing()
        requests = FALLBACK_REQUESTS if missing else poll_requests(management_url)
        if missing:
            print(f"   (no browser: {missing}; the requests as the JS writes them)")
        print(f"\n2. one poll per page, replayed {args.polls} times; the broker's CPU above the baseline")
        print(f"   {'page':<22} {'requests':>8} {'ms CPU/poll':>12} {'at one poll / 5 s':>18}")
        for page, paths in requests.items():
            before = cpu_seconds(broker.pid)
            wall = replay(management_url, paths, args.polls)
            spent = cpu_seconds(broker.pid) - before - baseline * wall
            per_poll = max(spent, 0.0) / args.polls
            print(f"   {page:<22} {len(paths):>8} {per_poll * 1000:>12.2f} {per_poll / 5:>18.3%}")

        if missing:
            print("\n3. skipped (no browser)")
            return
        print(f"\n3. end to end: Chromium on a page, refresh every 5 s, {args.seconds:.0f} s each")
        for page in ("#/queues", "#/overview"):
            extra, fetches = end_to_end(management_url, page, args.seconds, broker.pid, baseline)
            print(f"   {page:<22} broker CPU above the baseline: {extra:+.2%} of a core "
                  f"({fetches} requests in {args.seconds:.0f} s)")
        again = measure(broker.pid, args.baseline)
        print(f"   baseline again afterwards: {again:.1%} (the difference is the noise)")
    finally:
        for process in (traffic, broker):
            if process is not None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()


if __name__ == "__main__":
    main()
