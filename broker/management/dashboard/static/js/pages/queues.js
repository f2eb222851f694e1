// Queues: every queue of the chosen vhost with its live counts and rates.

import { path } from "../api.js";
import { dig, fmtRate } from "../dom.js";
import { queueFeatures } from "./features.js";
import { listPage, pageLink } from "./listing.js";

export default function queues(ctx) {
  return listPage(ctx, {
    key: "queues",
    title: "Queues",
    endpoint: (vhost) => (vhost ? path`/api/queues/${vhost}` : "/api/queues"),
    sort: "name",
    empty: "No queues.",
    rowId: (q) => `${q.vhost}/${q.name}`,
    fields: [
      "name", "vhost", "type", "state", "durable", "auto_delete", "exclusive", "arguments", "policy",
      "consumers", "messages_ready", "messages_unacknowledged", "messages",
      "message_stats.publish_details.rate", "message_stats.deliver_get_details.rate",
      "message_stats.ack_details.rate",
    ],
    columns: [
      { key: "vhost", label: "Vhost", sort: "vhost", allVhostsOnly: true },
      { key: "name", label: "Name", sort: "name", value: (q) => pageLink(q.name, "queues", q.vhost, q.name) },
      { key: "type", label: "Type", sort: "type" },
      { key: "features", label: "Features", value: queueFeatures },
      { key: "state", label: "State", sort: "state" },
      { key: "messages_ready", label: "Ready", num: true, sort: "messages_ready" },
      { key: "messages_unacknowledged", label: "Unacked", num: true, sort: "messages_unacknowledged" },
      { key: "messages", label: "Total", num: true, sort: "messages" },
      { key: "consumers", label: "Consumers", num: true, sort: "consumers" },
      { key: "publish_rate", label: "Incoming", num: true, sort: "message_stats.publish_details.rate",
        value: (q) => fmtRate(dig(q, "message_stats.publish_details.rate")) },
      { key: "deliver_rate", label: "Deliver / get", num: true, sort: "message_stats.deliver_get_details.rate",
        value: (q) => fmtRate(dig(q, "message_stats.deliver_get_details.rate")) },
      { key: "ack_rate", label: "Ack", num: true, sort: "message_stats.ack_details.rate",
        value: (q) => fmtRate(dig(q, "message_stats.ack_details.rate")) },
    ],
  });
}
