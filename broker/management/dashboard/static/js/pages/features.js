// The "features" column: short tags for a queue's or an exchange's properties
// and arguments, with the full argument in the tooltip (as RabbitMQ's dashboard shows them).

import { fmtValue, h, tag } from "../dom.js";

const QUEUE_ARGUMENTS = {
  "x-message-ttl": "TTL",
  "x-expires": "Exp",
  "x-max-length": "Lim",
  "x-max-length-bytes": "Lim B",
  "x-overflow": "Ovfl",
  "x-dead-letter-exchange": "DLX",
  "x-dead-letter-routing-key": "DLK",
  "x-max-priority": "Pri",
  "x-single-active-consumer": "SAC",
  "x-delivery-limit": "DL",
  "x-queue-mode": "Mode",
  "x-queue-master-locator": "ML",
};

function argumentTags(args, known) {
  return Object.entries(args || {})
    .filter(([name]) => name !== "x-queue-type")
    .map(([name, value]) => tag(known[name] || name, "", `${name}: ${fmtValue(value)}`));
}

export function queueFeatures(queue) {
  return h("span", {},
    queue.durable ? tag("D", "on", "durable") : null,
    queue.auto_delete ? tag("AD", "", "auto-delete") : null,
    queue.exclusive ? tag("Excl", "", "exclusive") : null,
    argumentTags(queue.arguments, QUEUE_ARGUMENTS),
    queue.policy ? tag(`Policy ${queue.policy}`, "warn") : null);
}

export function exchangeFeatures(exchange) {
  return h("span", {},
    exchange.durable ? tag("D", "on", "durable") : null,
    exchange.auto_delete ? tag("AD", "", "auto-delete") : null,
    exchange.internal ? tag("I", "warn", "internal: clients cannot publish to it") : null,
    argumentTags(exchange.arguments, { "alternate-exchange": "AE" }));
}
