"""Connections, channels and consumers over real HTTP, with pika clients on the other end."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pika
import pytest
from api_helpers import Api, amqp, api_of, quote, start_broker, wait_for

from broker.testing import BrokerThread

NAME = re.compile(r"^127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+$")

CONNECTION_FIELDS = {
    "auth_mechanism": str, "channel_max": int, "channels": int, "client_properties": dict,
    "connected_at": int, "frame_max": int, "host": str, "name": str, "node": str,
    "peer_cert_issuer": type(None), "peer_cert_subject": type(None),
    "peer_cert_validity": type(None), "peer_host": str, "peer_port": int, "port": int,
    "protocol": str, "recv_cnt": int, "recv_oct": int, "recv_oct_details": dict,
    "send_cnt": int, "send_oct": int, "send_oct_details": dict, "send_pend": int, "ssl": bool,
    "ssl_cipher": type(None), "ssl_hash": type(None), "ssl_key_exchange": type(None),
    "ssl_protocol": type(None), "state": str, "timeout": int, "type": str, "user": str,
    "user_who_performed_action": str, "vhost": str,
}
CHANNEL_FIELDS = {
    "acks_uncommitted": int, "confirm": bool, "connection_details": dict, "consumer_count": int,
    "global_prefetch_count": int, "messages_unacknowledged": int, "messages_uncommitted": int,
    "messages_unconfirmed": int, "name": str, "node": str, "number": int,
    "pending_raft_commands": int, "prefetch_count": int, "state": str, "transactional": bool,
    "user": str, "user_who_performed_action": str, "vhost": str,
}


@pytest.fixture
def broker() -> Iterator[BrokerThread]:
    thread = start_broker()
    try:
        yield thread
    finally:
        thread.stop()


@pytest.fixture
def api(broker: BrokerThread) -> Api:
    return api_of(broker)


def test_connections_channels_and_consumers_as_rabbitmq_lists_them(broker, api) -> None:
    params = pika.URLParameters(broker.url + "?heartbeat=30")
    params.client_properties = {"connection_name": "billing-worker"}
    connection = pika.BlockingConnection(params)
    channel = connection.channel()
    channel.confirm_delivery()
    channel.queue_declare("work")
    channel.basic_publish("", "work", b"job")
    channel.basic_qos(prefetch_count=7)
    channel.basic_consume("work", lambda *a: None, consumer_tag="c1", arguments={"x-priority": 5})
    connection.process_data_events(0.2)

    (item,) = wait_for(lambda: api.get("/api/connections"))
    for field, kind in CONNECTION_FIELDS.items():
        assert isinstance(item[field], kind), (field, item[field])
    assert NAME.match(item["name"]), item["name"]
    assert item["name"] == f"{item['peer_host']}:{item['peer_port']} -> {item['host']}:{item['port']}"
    assert item["port"] == broker.broker.port and item["peer_host"] == "127.0.0.1"
    assert (item["user"], item["vhost"], item["protocol"], item["auth_mechanism"]) == (
        "guest", "/", "AMQP 0-9-1", "PLAIN")
    assert (item["timeout"], item["channels"], item["state"], item["type"]) == (
        30, 1, "running", "network")
    assert item["user_provided_name"] == "billing-worker"
    assert item["client_properties"]["capabilities"]["publisher_confirms"] is True
    assert item["recv_oct"] > 0 and item["send_oct"] > 0
    assert abs(item["connected_at"] / 1000 - __import__("time").time()) < 60
    one = api.get("/api/connections/" + quote(item["name"]))
    assert one["name"] == item["name"]
    assert one["ssl_protocol"] == "" and one["peer_cert_subject"] == ""  # "" here, null in lists
    assert api.call("GET", "/api/connections/" + quote("1.2.3.4:5 -> 6.7.8.9:10")).status == 404

    (ch,) = api.get("/api/channels")
    for field, kind in CHANNEL_FIELDS.items():
        assert isinstance(ch[field], kind), (field, ch[field])
    assert ch["name"] == item["name"] + " (1)"
    assert ch["connection_details"] == {"name": item["name"], "peer_host": item["peer_host"],
                                        "peer_port": item["peer_port"]}
    assert (ch["confirm"], ch["consumer_count"], ch["prefetch_count"], ch["number"]) == (
        True, 1, 7, 1)
    stats = wait_for(lambda: api.get("/api/channels")[0].get("message_stats", {}).get("deliver") == 1
                     and api.get("/api/channels")[0]["message_stats"])
    assert (stats["publish"], stats["confirm"], stats["deliver"], stats["ack"]) == (1, 1, 1, 0)
    assert api.get("/api/channels")[0]["messages_unacknowledged"] == 1
    single = api.get("/api/channels/" + quote(ch["name"]))
    assert single["consumer_details"][0]["consumer_tag"] == "c1"
    assert single["deliveries"] == [] and single["publishes"] == []
    assert api.call("GET", "/api/channels/" + quote(item["name"] + " (9)")).status == 404
    assert [c["name"] for c in api.get("/api/connections/" + quote(item["name"]) + "/channels")] == [
        ch["name"]]
    assert [c["name"] for c in api.get("/api/vhosts/%2F/connections")] == [item["name"]]

    (consumer,) = api.get("/api/consumers")
    assert consumer == {
        "arguments": {"x-priority": 5}, "ack_required": True, "active": True,
        "activity_status": "up",
        "channel_details": {"connection_name": item["name"], "name": ch["name"],
                            "node": item["node"], "number": 1, "peer_host": item["peer_host"],
                            "peer_port": item["peer_port"], "user": "guest"},
        "consumer_tag": "c1", "exclusive": False, "prefetch_count": 7,
        "queue": {"name": "work", "vhost": "/"},
    }
    assert api.get("/api/consumers/%2F") == [consumer]
    assert api.call("GET", "/api/consumers/nope").status == 404
    connection.close()
    wait_for(lambda: api.get("/api/connections") == [])


def test_delete_connection_closes_it_with_320_and_the_reason(broker, api) -> None:
    connection = amqp(broker)
    connection.channel()
    (item,) = wait_for(lambda: api.get("/api/connections"))
    reply = api.call("DELETE", "/api/connections/" + quote(item["name"]),
                     headers={"X-Reason": "maintenance window"})
    assert reply.status == 204
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as closed:
        connection.process_data_events(time_limit=3)
        connection.channel()
    assert (closed.value.reply_code, closed.value.reply_text) == (
        320, "CONNECTION_FORCED - maintenance window")
    assert api.call("DELETE", "/api/connections/" + quote(item["name"])).status == 404

    other = amqp(broker)
    other.channel()
    (item,) = wait_for(lambda: api.get("/api/connections"))
    assert api.call("DELETE", "/api/connections/" + quote(item["name"])).status == 204
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as closed:
        other.process_data_events(time_limit=3)
        other.channel()
    assert closed.value.reply_text == "CONNECTION_FORCED - Closed via management plugin"


def test_other_users_connections_are_theirs(broker, api) -> None:
    api.call("PUT", "/api/users/ann", {"password": "pw", "tags": "management"})
    api.call("PUT", "/api/permissions/%2F/ann", {"configure": ".*", "write": ".*", "read": ".*"})
    api.call("PUT", "/api/users/mon", {"password": "pw", "tags": "monitoring"})
    guest = amqp(broker)
    guest.channel()
    port = broker.broker.port
    ann = pika.BlockingConnection(pika.URLParameters(f"amqp://ann:pw@127.0.0.1:{port}/%2F"))
    ann.channel()
    everyone = wait_for(lambda: len(api.get("/api/connections")) == 2 and api.get("/api/connections"))
    guests = next(c for c in everyone if c["user"] == "guest")
    assert [c["user"] for c in api.get("/api/connections", auth=("ann", "pw"))] == ["ann"]
    assert len(api.get("/api/connections", auth=("mon", "pw"))) == 2
    assert len(api.get("/api/channels", auth=("ann", "pw"))) == 1
    path = "/api/connections/" + quote(guests["name"])
    assert api.call("GET", path, auth=("ann", "pw")).body == {
        "error": "not_authorised", "reason": "User not authorised to access object"}
    assert api.call("GET", path, auth=("mon", "pw")).status == 200
    assert api.call("DELETE", path, auth=("mon", "pw")).status == 401
    assert api.call("DELETE", path, auth=("ann", "pw")).status == 401
    guest.close()
    ann.close()
