"""The management plane: an HTTP API compatible with RabbitMQ's, Prometheus, a dashboard.

The HTTP layer knows nothing of the broker:

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
nothing else from `broker/`. On top of them:

- `broker.management.context`: `ManagementContext`, what the server hands
  the management plane (vhosts, users, connections, alarms, listeners);
- `broker.management.authz`: management tags and RabbitMQ's check families;
- `broker.management.query`: sort, columns and pagination of lists (long
  lists built, encoded and sent a chunk at a time);
- `broker.management.stats`: `Totals` (the model's counters summed) and
  `Statistics` (the sampler the server runs: rates over the last interval);
- `broker.management.views`: RabbitMQ's JSON shapes from snapshots;
- `broker.management.api.*`: the endpoints, one module per area;
- `broker.management.app`: all of it as one `HttpApp`;
- `broker.management.prometheus`: /metrics and /metrics/per-object, a
  second `HttpApp` (`process` reads memory, descriptors and disk);
- `broker.management.bench`: what statistics and the API cost (prints numbers).
"""
