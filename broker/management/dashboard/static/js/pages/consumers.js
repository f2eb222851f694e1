// Consumers: every consumer, its queue, channel, prefetch and arguments.

import { path } from "../api.js";
import { fmtValue, tag } from "../dom.js";
import { listPage, pageLink } from "./listing.js";

export default function consumers(ctx) {
  return listPage(ctx, {
    key: "consumers",
    title: "Consumers",
    endpoint: (vhost) => (vhost ? path`/api/consumers/${vhost}` : "/api/consumers"),
    clientSide: true, // RabbitMQ does not paginate /api/consumers
    nameField: "queue.name",
    sort: "queue.name",
    empty: "No consumers.",
    rowId: (c) => `${c.channel_details && c.channel_details.name} ${c.consumer_tag}`,
    columns: [
      { key: "queue.vhost", label: "Vhost", sort: "queue.vhost", allVhostsOnly: true },
      { key: "queue.name", label: "Queue", sort: "queue.name",
        value: (c) => pageLink(c.queue.name, "queues", c.queue.vhost, c.queue.name) },
      { key: "channel_details.name", label: "Channel", sort: "channel_details.name" },
      { key: "consumer_tag", label: "Consumer tag", sort: "consumer_tag" },
      { key: "ack_required", label: "Ack required", value: (c) => (c.ack_required ? "yes" : "no (auto-ack)") },
      { key: "exclusive", label: "Exclusive", value: (c) => (c.exclusive ? tag("exclusive", "warn") : "no") },
      { key: "prefetch_count", label: "Prefetch", num: true, sort: "prefetch_count" },
      { key: "activity_status", label: "Activity", sort: "activity_status" },
      { key: "arguments", label: "Arguments",
        value: (c) => (c.arguments && Object.keys(c.arguments).length ? fmtValue(c.arguments) : "\u2013") },
    ],
  });
}
