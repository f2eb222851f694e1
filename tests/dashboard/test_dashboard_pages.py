"""The dashboard in a real headless Chromium, against a real Warren.

Each test logs in, opens a page, checks that what it shows is the broker's
state (declared with pika, changed by publishing), performs the page's
actions and checks the broker changed, takes a screenshot, and fails on any
console error, uncaught exception or failed request in the page.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pika
import pytest
from dashboard_helpers import Browser, Dashboard, wait_for

from broker.testing import BrokerThread

Api = Callable[..., tuple[int, Any]]


@pytest.fixture
def channel(warren: BrokerThread) -> Iterator[Any]:
    connection = pika.BlockingConnection(pika.URLParameters(warren.url))
    try:
        yield connection.channel()
    finally:
        if connection.is_open:
            connection.close()


def message_count(channel: Any, queue: str) -> int:
    return channel.queue_declare(queue, passive=True).method.message_count


# -- pages on the endpoints already on main ------------------------------------------


def test_login(dash: Dashboard, api: Api) -> None:
    # Failed logins make the browser log the 401 answers: expected here.
    dash.allowed.append(lambda e: "/api/whoami" in e["message"] and "401" in e["message"])
    dash.open("#/admin")
    dash.wait_visible("#login-form")
    assert not dash.find("#shell").is_displayed()
    dash.screenshot("login")

    dash.fill("#login-username", "guest")
    dash.fill("#login-password", "wrong")
    dash.click("#login-submit")
    dash.wait_text("#login-error", "Login failed: wrong username or password.")

    assert api("PUT", "/api/users/dash-notag", {"password": "pw", "tags": ""})[0] == 201
    dash.fill("#login-username", "dash-notag")
    dash.fill("#login-password", "pw")
    dash.click("#login-submit")
    dash.wait_text("#login-error", "this user has no management tag")
    assert dash.driver.execute_script("return sessionStorage.getItem('warren.auth')") is None

    dash.fill("#login-username", "guest")
    dash.fill("#login-password", "guest")
    dash.click("#login-submit")
    dash.wait_visible("#shell")
    assert dash.text("#who") == "guest (administrator)"
    assert dash.text("#nav a.active") == "Admin"

    # A reload keeps the session (sessionStorage); logging out forgets it.
    dash.open("#/admin")
    dash.wait_visible("#shell")
    dash.click("#logout")
    dash.wait_visible("#login-form")
    assert dash.driver.execute_script("return sessionStorage.getItem('warren.auth')") is None


def test_a_session_whose_credentials_stop_working_goes_back_to_login(
    dash: Dashboard, api: Api
) -> None:
    dash.allowed.append(lambda e: "401" in e["message"])
    assert api("PUT", "/api/users/dash-temp", {"password": "pw", "tags": "administrator"})[0] == 201
    dash.login("dash-temp", "pw", "#/admin")
    dash.wait_text("#users", "dash-temp")
    assert api("PUT", "/api/users/dash-temp", {"password": "changed", "tags": "administrator"})[0] == 204
    # The next poll (1 s) is refused: back to the login form, saying why.
    dash.wait_text("#login-error", "no longer accepts these credentials")
    assert not dash.find("#shell").is_displayed()


def test_admin_users_vhosts_permissions(dash: Dashboard, api: Api) -> None:
    dash.login()
    dash.wait_text("#users", "guest")
    dash.wait_text("#vhosts", "Default virtual host")

    dash.fill("#user-name", "dash-alice")
    dash.fill("#user-password", "s3cret")
    dash.fill("#user-tags", "monitoring, management")
    dash.click("#user-submit")
    dash.wait_text("#admin-result", "User 'dash-alice' saved.")
    status, alice = api("GET", "/api/users/dash-alice")
    assert status == 200 and alice["tags"] == ["monitoring", "management"]
    assert api("GET", "/api/whoami", auth=("dash-alice", "s3cret"))[0] == 200
    dash.wait_text("#users", "dash-alice")

    # Updating the tags without a password keeps the password.
    dash.fill("#user-name", "dash-alice")
    dash.fill("#user-tags", "administrator")
    dash.click("#user-submit")
    wait_for(lambda: api("GET", "/api/users/dash-alice")[1]["tags"] == ["administrator"])
    assert api("GET", "/api/whoami", auth=("dash-alice", "s3cret"))[0] == 200

    dash.fill("#vhost-name", "dash-shop")
    dash.fill("#vhost-description", "the shop")
    dash.click("#vhost-submit")
    dash.wait_text("#admin-result", "Vhost 'dash-shop' saved.")
    assert api("GET", "/api/vhosts/dash-shop")[1]["description"] == "the shop"
    dash.wait_text("#vhosts", "dash-shop")

    dash.wait_script("return [...document.querySelectorAll('#permission-vhost option')]"
                     ".some(o => o.value === 'dash-shop')")
    dash.select("#permission-user", "dash-alice")
    dash.select("#permission-vhost", "dash-shop")
    dash.fill("#permission-write", "^orders$")
    dash.click("#permission-submit")
    dash.wait_text("#admin-result", "Permission of 'dash-alice' in vhost 'dash-shop' set.")
    assert api("GET", "/api/permissions/dash-shop/dash-alice")[1] == {
        "user": "dash-alice", "vhost": "dash-shop", "configure": ".*", "write": "^orders$", "read": ".*"}
    dash.wait_text("#permissions", "^orders$")
    dash.screenshot("admin")

    # Deleting asks first; Cancel keeps the user, OK deletes it.
    dash.click("button[data-delete='user:dash-alice']")
    dash.wait_visible("#confirm-dialog")
    assert "Delete user 'dash-alice'?" in dash.text("#confirm-text")
    dash.click("#confirm-cancel")
    time.sleep(0.2)
    assert api("GET", "/api/users/dash-alice")[0] == 200
    dash.click("button[data-delete='user:dash-alice']")
    dash.wait_visible("#confirm-dialog")
    dash.click("#confirm-ok")
    dash.wait_text("#admin-result", "User 'dash-alice' deleted.")
    assert api("GET", "/api/users/dash-alice")[0] == 404
    dash.wait_text("#users", lambda text: "dash-alice" not in text)

    dash.click("button[data-delete='vhost:dash-shop']")
    dash.click("#confirm-ok")
    dash.wait_text("#admin-result", "Vhost 'dash-shop' deleted.")
    assert api("GET", "/api/vhosts/dash-shop")[0] == 404


def test_a_non_administrator_is_told_why_admin_is_empty(dash: Dashboard, api: Api) -> None:
    dash.allowed.append(lambda e: "401" in e["message"])
    assert api("PUT", "/api/users/dash-viewer", {"password": "pw", "tags": "management"})[0] == 201
    dash.login("dash-viewer", "pw", "#/admin")
    dash.wait_text("#page-error", "Not allowed: Not administrator user")
    assert dash.find("#shell").is_displayed()  # refused an endpoint, not logged out


def test_definitions_export_and_import(
    dash: Dashboard, api: Api, channel: Any, browser: Browser, tmp_path: Path
) -> None:
    channel.queue_declare("dash-def-q", durable=True)
    dash.login(hash_="#/definitions")
    dash.click("#export-download")
    dash.wait_text("#export-result", "Downloaded warren-definitions-")
    name = dash.text("#export-result").split()[1]
    download = browser.download_dir / name
    wait_for(download.exists)
    exported = json.loads(wait_for(lambda: download.read_text() or None))
    assert exported == api("GET", "/api/definitions")[1]
    assert {"name": "dash-def-q", "vhost": "/", "durable": True, "auto_delete": False,
            "arguments": {}} in exported["queues"]

    document = {
        "queues": [{"name": "dash-imported", "vhost": "/", "durable": True,
                    "auto_delete": False, "arguments": {"x-max-length": 10}}],
        "exchanges": [{"name": "dash-imported-x", "vhost": "/", "type": "fanout", "durable": True,
                       "auto_delete": False, "internal": False, "arguments": {}}],
        "bindings": [{"source": "dash-imported-x", "vhost": "/", "destination": "dash-imported",
                      "destination_type": "queue", "routing_key": "", "arguments": {}}],
    }
    upload = tmp_path / "import.json"
    upload.write_text(json.dumps(document))
    dash.find("#import-file").send_keys(str(upload))
    dash.click("#import-upload")
    dash.wait_text("#import-result", "Imported import.json.")
    after = api("GET", "/api/definitions")[1]
    assert document["queues"][0] in after["queues"]
    assert document["exchanges"][0] in after["exchanges"]
    assert document["bindings"][0] in after["bindings"]
    channel.basic_publish("dash-imported-x", "", b"routed by an imported binding")
    assert message_count(channel, "dash-imported") == 1

    # A file that is not JSON is refused in the page, before any request.
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    dash.find("#import-file").send_keys(str(bad))
    dash.click("#import-upload")
    dash.wait_text("#import-result", "bad.json is not JSON.")
    dash.screenshot("definitions")


def test_route_tracer(dash: Dashboard, channel: Any) -> None:
    channel.exchange_declare("dash-orders", "topic")
    channel.exchange_declare("dash-orders.audit", "headers")
    channel.exchange_declare("dash-unrouted", "fanout")
    channel.exchange_declare("dash-ship", "direct", arguments={"alternate-exchange": "dash-unrouted"})
    for queue in ("dash-billing", "dash-audit", "dash-lost"):
        channel.queue_declare(queue)
    channel.queue_bind("dash-billing", "dash-orders", "order.*.created")
    channel.exchange_bind("dash-orders.audit", "dash-orders", "order.#")
    channel.queue_bind("dash-audit", "dash-orders.audit", "",
                       arguments={"x-match": "any", "priority": "high", "urgent": True})
    channel.queue_bind("dash-lost", "dash-unrouted", "")

    dash.login(hash_="#/trace")
    dash.select("#trace-vhost", "/")
    dash.fill("#trace-exchange", "dash-orders")
    dash.fill("#trace-routing-key", "order.eu.created")
    dash.fill("#trace-headers .header-name", "urgent")
    dash.fill("#trace-headers .header-value", "true")
    dash.select("#trace-headers .header-type", "boolean")
    dash.click("#trace-submit")
    dash.wait_text("#trace-summary", "Reaches 2 queues: dash-billing, dash-audit.")
    audit = dash.text("[data-queue='dash-audit'] .chain")
    assert audit.split("\n") == [
        "exchange dash-orders", "key 'order.#' matched 'order.eu.created'",
        "exchange dash-orders.audit", "headers x-match=any priority=high urgent=true",
        "queue dash-audit"]
    assert dash.rows("trace-exchange-table") == ["dash-orders", "dash-orders.audit"]
    # The exchange field suggests the vhost's exchanges (GET /api/exchanges/V).
    dash.wait_script("return [...document.querySelectorAll('#trace-exchanges option')]"
                     ".some(o => o.value === 'dash-orders.audit')")
    dash.screenshot("trace")

    # The alternate exchange takes what the direct exchange does not match.
    dash.fill("#trace-exchange", "dash-ship")
    dash.fill("#trace-routing-key", "nowhere")
    dash.click("#trace-headers button")  # remove the header row
    dash.click("#trace-submit")
    dash.wait_text("#trace-summary", "Reaches 1 queue: dash-lost.")
    assert "matched nothing: alternate exchange" in dash.text("[data-queue='dash-lost'] .chain")
    assert dash.cell("trace-exchange-table", "dash-ship", "outcome") == "no bindings"

    # Unroutable: why, at every exchange, and what the broker does with it.
    dash.fill("#trace-exchange", "dash-orders")
    dash.fill("#trace-routing-key", "invoice.paid")
    dash.click("#trace-submit")
    dash.wait_text("#trace-summary", "Unroutable")
    assert "no binding matched the routing key 'invoice.paid'" in dash.text("#trace-unroutable")
    assert "basic.return 312 NO_ROUTE" in dash.text("#trace-unroutable")

    # An unknown exchange: the API's answer, in the page.
    dash.fill("#trace-exchange", "dash-nope")
    dash.allowed.append(lambda e: "/api/warren/trace/" in e["message"] and "404" in e["message"])
    dash.click("#trace-submit")
    dash.wait_text("#trace-error", "no exchange 'dash-nope' in vhost '/'")
    # Nothing was published by any of it.
    assert message_count(channel, "dash-billing") == 0
    assert message_count(channel, "dash-lost") == 0

    # Names are shown as text, never run as HTML.
    evil = '<img src=x onerror="window.__xss = 1">'
    channel.exchange_declare("dash-xss", "fanout")
    channel.queue_declare(evil)
    channel.queue_bind(evil, "dash-xss", "")
    dash.fill("#trace-exchange", "dash-xss")
    dash.click("#trace-submit")
    dash.wait_text("#trace-summary", f"Reaches 1 queue: {evil}.")
    assert dash.find_all("#trace-results img") == []
    assert dash.driver.execute_script("return window.__xss") is None


def test_polling_is_the_visible_page_only_and_stops_while_hidden(dash: Dashboard) -> None:
    dash.login(hash_="#/admin")
    dash.wait_text("#users", "guest")
    dash.driver.execute_script("window.__warrenFetches = []")
    time.sleep(2.5)
    polled = dash.fetches()
    # About one poll a second (refresh 1 s here), each the admin page's three lists.
    assert 3 <= len(polled) <= 12, polled
    assert set(polled) == {"GET /api/users", "GET /api/vhosts", "GET /api/permissions"}

    # The tab is hidden: no more requests until it is shown again. (The period
    # becomes 30 s, so that a poll on showing is told apart from a periodic one.)
    dash.driver.execute_script(
        "Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});"
        "document.dispatchEvent(new Event('visibilitychange'));"
        "localStorage.setItem('warren.refresh', '30000'); window.__warrenFetches = [];")
    time.sleep(2.5)
    assert dash.fetches() == []
    assert "paused while the tab is hidden" in dash.text("#status")
    dash.driver.execute_script(
        "Object.defineProperty(document, 'hidden', {configurable: true, get: () => false});"
        "document.dispatchEvent(new Event('visibilitychange'));")
    wait_for(lambda: len(dash.fetches()) == 3, timeout=5.0)  # at once, not 30 s later
    dash.wait_text("#status", "refreshing every 30 s")

    # A page without live data does not poll at all.
    dash.driver.execute_script("localStorage.setItem('warren.refresh', '1000')")
    dash.go("#/definitions")
    dash.wait_visible("#export-download")
    dash.driver.execute_script("window.__warrenFetches = []")
    time.sleep(1.5)
    assert dash.fetches() == []


# -- pages on the statistics endpoints ---------------------------------------------------


def test_overview(dash: Dashboard, api: Api, channel: Any) -> None:
    channel.queue_declare("dash-ov")
    for _ in range(5):
        channel.basic_publish("", "dash-ov", b"x")
    dash.login(hash_="#/overview")
    dash.wait_visible("#overview-totals")

    def shown_matches() -> bool:
        overview = api("GET", "/api/overview")[1]
        shown = {key: dash.text(f"#total-{key} .value") for key in ("queues", "exchanges", "connections")}
        return shown == {key: f"{overview['object_totals'][key]:,}" for key in shown}

    wait_for(shown_matches)
    wait_for(lambda: int(dash.text("#total-messages .value").replace(",", ""))
             == api("GET", "/api/overview")[1]["queue_totals"]["messages"])
    # The charts grow by one sample per poll.
    wait_for(lambda: int(dash.find("#chart-rates").get_attribute("data-samples")) >= 3)
    assert dash.find_all("#chart-queued polyline")
    dash.screenshot("overview")


def test_queues_table_is_live(dash: Dashboard, channel: Any) -> None:
    for index in range(3):
        channel.queue_declare(f"dash-list-{index}")
    for _ in range(4):
        channel.basic_publish("", "dash-list-1", b"x")
    dash.login(hash_="#/queues")
    dash.fill("#queues-filter", "dash-list-")
    wait_for(lambda: dash.rows("queues") == [f"//dash-list-{i}" for i in range(3)])
    wait_for(lambda: dash.cell("queues", "//dash-list-1", "messages_ready") == "4")
    assert dash.cell("queues", "//dash-list-0", "messages") == "0"
    # Live: more messages, and the table follows without a reload.
    for _ in range(3):
        channel.basic_publish("", "dash-list-1", b"x")
    wait_for(lambda: dash.cell("queues", "//dash-list-1", "messages_ready") == "7")
    # Sorting by a column asks the API (sort=messages, then reversed).
    dash.driver.execute_script(
        "[...document.querySelectorAll('#queues th')].find(t => t.textContent === 'Ready').click()")
    dash.driver.execute_script(
        "[...document.querySelectorAll('#queues th')].find(t => t.textContent.startsWith('Ready')).click()")
    wait_for(lambda: dash.rows("queues")[0] == "//dash-list-1")
    assert any("sort=messages_ready" in f and "sort_reverse=true" in f for f in dash.fetches())
    dash.screenshot("queues")


def test_queue_page_get_and_purge(dash: Dashboard, api: Api, channel: Any, warren: BrokerThread) -> None:
    channel.exchange_declare("dash-qx", "direct")
    channel.queue_declare("dash-work")
    channel.queue_bind("dash-work", "dash-qx", "job")
    for index in range(5):
        channel.basic_publish("dash-qx", "job", f"job {index}".encode(),
                              pika.BasicProperties(content_type="text/plain", headers={"n": index}))
    consumer = pika.BlockingConnection(pika.URLParameters(warren.url))
    try:
        other = consumer.channel()
        other.queue_declare("dash-work-consumed")
        other.basic_consume("dash-work-consumed", lambda *a: None, consumer_tag="dash-tag")
        dash.login(hash_="#/queues/%2F/dash-work")
        dash.wait_text("#queue-ready .value", "5")
        assert dash.rows("queue-binding-table") == ["|dash-work", "dash-qx|job"]

        dash.fill("#get-form input[name=count]", "2")
        dash.select("#get-form select[name=ackmode]", "ack_requeue_false")
        dash.click("#get-submit")
        dash.wait_text("#queue-result", "Got 2 messages.")
        payloads = [e.text for e in dash.find_all("#get-results .payload")]
        assert payloads == ["job 0", "job 1"]
        assert "header n" in dash.text("#get-results [data-message='1']")
        assert message_count(channel, "dash-work") == 3
        dash.wait_text("#queue-ready .value", "3")

        dash.click("#purge")
        dash.wait_visible("#confirm-dialog")
        assert "Its 3 ready message(s) are deleted" in dash.text("#confirm-text")
        dash.click("#confirm-ok")
        dash.wait_text("#queue-result", "Queue 'dash-work' purged.")
        assert message_count(channel, "dash-work") == 0
        dash.wait_text("#queue-ready .value", "0")
        dash.screenshot("queue")

        dash.go("#/queues/%2F/dash-work-consumed")
        dash.wait_text("#queue-consumer-table", "dash-tag")
        dash.click("#get-submit")
        dash.wait_visible("#get-empty")
    finally:
        consumer.close()


def test_queue_page_shows_the_policies_and_the_single_active_consumer(
    dash: Dashboard, api: Api, channel: Any
) -> None:
    """The queue page shows the policy, operator policy and effective definition
    the API gives (not "none" while one applies), and which consumer of a
    single-active-consumer queue is active."""
    channel.queue_declare("dash-orders.eu", arguments={"x-single-active-consumer": True})
    channel.basic_consume("dash-orders.eu", lambda *a: None, consumer_tag="dash-first")
    channel.basic_consume("dash-orders.eu", lambda *a: None, consumer_tag="dash-second")
    assert api("PUT", "/api/policies/%2F/dash-cap",
               {"pattern": "^dash-orders\\.", "definition": {"max-length": 2},
                "apply-to": "queues"})[0] == 201
    assert api("PUT", "/api/operator-policies/%2F/dash-op",
               {"pattern": "^dash-orders\\.", "definition": {"message-ttl": 60000},
                "apply-to": "queues"})[0] == 201
    try:
        dash.login(hash_="#/queues/%2F/dash-orders.eu")
        details = dash.wait_text("#queue-details", lambda text: "dash-cap" in text)
        assert "Policy\ndash-cap" in details
        assert "Operator policy\ndash-op" in details
        assert "max-length" in details and "message-ttl" in details
        assert "Single active consumer\ndash-first" in details
        consumers = dash.wait_text("#queue-consumer-table", lambda text: "waiting" in text)
        assert "single_active" in consumers
        dash.screenshot("queue-policy")
    finally:
        api("DELETE", "/api/policies/%2F/dash-cap")
        api("DELETE", "/api/operator-policies/%2F/dash-op")
        channel.queue_delete("dash-orders.eu")


def test_exchanges_and_publish(dash: Dashboard, channel: Any) -> None:
    channel.exchange_declare("dash-pub", "topic", arguments={"alternate-exchange": "amq.fanout"})
    channel.queue_declare("dash-pub-q")
    channel.queue_bind("dash-pub-q", "dash-pub", "a.*")
    dash.login(hash_="#/exchanges")
    dash.fill("#exchanges-filter", "dash-pub")
    wait_for(lambda: dash.rows("exchanges") == ["//dash-pub"])
    assert dash.cell("exchanges", "//dash-pub", "type") == "topic"
    assert "AE" in dash.cell("exchanges", "//dash-pub", "features")
    dash.screenshot("exchanges")

    dash.click("#exchanges a")
    dash.wait_text("#exchange-source-table", "dash-pub-q")
    dash.fill("#publish-routing-key", "a.b")
    dash.fill("#publish-headers .header-name", "kind")
    dash.fill("#publish-headers .header-value", "test")
    dash.fill("#publish-payload", "hello from the dashboard")
    dash.click("#publish-submit")
    dash.wait_text("#publish-result", "Message published.")
    method, properties, body = channel.basic_get("dash-pub-q", auto_ack=True)
    assert (method.routing_key, body, properties.headers) == (
        "a.b", b"hello from the dashboard", {"kind": "test"})
    dash.screenshot("exchange")

    # "Trace its route first" opens the tracer with the message filled in.
    dash.click("#publish-trace")
    dash.wait_text("#trace-summary", "Reaches 1 queue: dash-pub-q.")
    assert dash.find("#trace-exchange").get_attribute("value") == "dash-pub"


def test_connections_channels_consumers(dash: Dashboard, warren: BrokerThread) -> None:
    parameters = pika.URLParameters(warren.url)
    parameters.client_properties = {"connection_name": "dash-billing-service"}
    connection = pika.BlockingConnection(parameters)
    try:
        ch = connection.channel()
        ch.basic_qos(prefetch_count=7)
        ch.confirm_delivery()
        ch.queue_declare("dash-consumed")
        ch.basic_consume("dash-consumed", lambda *a: None, consumer_tag="dash-consumer-1")

        dash.login(hash_="#/connections")
        dash.wait_text("#connections", "dash-billing-service")
        row = next(r for r in dash.rows("connections")
                   if "dash-billing-service" in dash.cell("connections", r, "name"))
        assert dash.cell("connections", row, "user") == "guest"
        assert dash.cell("connections", row, "channels") == "1"
        assert "Pika" in dash.cell("connections", row, "client")
        dash.screenshot("connections")

        dash.go("#/channels")
        channel_row = f"{row} (1)"
        wait_for(lambda: dash.cell("channels", channel_row, "prefetch_count") == "7")
        assert dash.cell("channels", channel_row, "consumer_count") == "1"
        assert "C" in dash.cell("channels", channel_row, "mode")
        dash.screenshot("channels")

        dash.go("#/consumers")
        dash.wait_text("#consumers", "dash-consumer-1")
        assert dash.cell("consumers", f"{channel_row} dash-consumer-1", "queue.name") == "dash-consumed"
        dash.screenshot("consumers")
    finally:
        connection.close()
