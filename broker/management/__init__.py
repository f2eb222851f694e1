"""The management plane: an HTTP API compatible with RabbitMQ's, Prometheus, a dashboard.

This package is being built from the bottom up. What is here today is the
HTTP layer, which knows nothing of the broker:

- `broker.management.http`: an HTTP/1.1 server on trio + h11 over any
  `trio.abc.Stream` (TLS is a `trio.SSLStream` wrapper, not a branch), with
  keep-alive and pipelining, every resource bounded (`HttpLimits`), HTTP
  Basic authentication handed to a callback, and RabbitMQ's error answers.
- `broker.management.messages`: `Request`, `Response`, `HttpError`, without
  I/O; the error bodies are RabbitMQ's `{"error": ..., "reason": ...}`.
- `broker.management.router`: path patterns such as
  `/api/queues/{vhost}/{name}`, decoded one segment at a time (`%2F` is the
  vhost `/`), and the query string.
- `broker.management.static`: files for a dashboard, with ETag and
  Last-Modified as RabbitMQ's cowboy serves them.

These modules import trio, h11, the standard library and `broker.logging`,
nothing else from `broker/`: the API handlers on top of them read the
broker's snapshots, the HTTP layer never does.
"""
