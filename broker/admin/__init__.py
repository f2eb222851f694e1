"""Broker-wide operations the server and the management plane share.

- `definitions`: RabbitMQ's definitions JSON, exported from and imported into
  the vhost registry and the access control.
"""
