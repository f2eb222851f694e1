"""Warren's trio server: listener, connections, channels, vhost, queues, CLI.

Start one with `warren serve`, or in-process with `broker.server.open_broker`
(async) or `broker.testing.run_broker_in_thread` (synchronous code).
"""

__version__ = "0.1.0"
