"""Queue features that RabbitMQ users build on, one module each.

- `arguments`: one validator per queue `x-` argument (406 texts as RabbitMQ's);
- `ttl`: the per-message `expiration` property, parsed as RabbitMQ parses it;
- `dead_lettering`: the dead-lettered copy (x-death, x-first-death-*), the
  cycle rule, republishing to the dead-letter exchange;
- `delivery_limit`: x-delivery-limit and the x-delivery-count header;
- `priority`: priority queues (x-max-priority), a Queue subclass;
- `consumers`: consumer priorities (x-priority) and single active consumer.

The queue (broker/queue.py) calls into these at the few points where a
message can leave it other than by an ack; queues without the arguments pay
one attribute test. docs/dead-lettering.md is the user's guide.
"""
