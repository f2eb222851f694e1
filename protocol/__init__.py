"""AMQP 0-9-1 without I/O: the codec and connection state machine Warren's broker,
its trio client and its tools share.

- `protocol.constants`: protocol header, frame types, reply codes;
- `protocol.errors`: `AMQPError` and its hard (`ConnectionException`) and soft
  (`ChannelException`) kinds;
- `protocol.fields`: field tables and arrays, RabbitMQ's type table;
- `protocol.methods`: one class per method, every class of 0-9-1 plus RabbitMQ's
  extensions;
- `protocol.properties`: `BasicProperties`, the 14 content properties;
- `protocol.frames`: `FrameReader` and the frame writers;
- `protocol.connection`: `Connection(role)`, the state machine for both roles.

Standard library only: no trio, no sockets (tests/test_layering.py). See
docs/protocol.md; ``python -m protocol.bench`` measures it against pamqp.
"""
