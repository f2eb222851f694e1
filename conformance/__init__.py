"""A broker-independent AMQP 0-9-1 behaviour suite.

Point it at any broker: ``python -m conformance --url amqp://user:pass@host:port/vhost``.
The tests live in ``conformance/tests/`` (one module per feature area) and use
only real clients (pika, aio-pika and its aiormq, py-amqp). See ``docs/conformance.md``.
"""
