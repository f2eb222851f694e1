// Channels: every channel, its mode, prefetch, unacked messages and rates.

import { path } from "../api.js";
import { dig, fmtRate, h, tag } from "../dom.js";
import { listPage } from "./listing.js";

export default function channels(ctx) {
  return listPage(ctx, {
    key: "channels",
    title: "Channels",
    endpoint: (vhost) => (vhost ? path`/api/vhosts/${vhost}/channels` : "/api/channels"),
    sort: "name",
    empty: "No channels.",
    rowId: (c) => c.name,
    fields: [
      "name", "vhost", "user", "state", "confirm", "transactional", "consumer_count", "prefetch_count",
      "global_prefetch_count", "messages_unacknowledged", "messages_unconfirmed", "messages_uncommitted",
      "message_stats.publish_details.rate", "message_stats.deliver_get_details.rate",
      "message_stats.ack_details.rate",
    ],
    columns: [
      { key: "name", label: "Channel", sort: "name" },
      { key: "vhost", label: "Vhost", sort: "vhost", allVhostsOnly: true },
      { key: "user", label: "User", sort: "user" },
      { key: "mode", label: "Mode",
        value: (c) => h("span", {}, c.confirm ? tag("C", "on", "publisher confirms") : null,
          c.transactional ? tag("T", "warn", "transactional") : null) },
      { key: "state", label: "State", sort: "state" },
      { key: "consumer_count", label: "Consumers", num: true, sort: "consumer_count" },
      { key: "prefetch_count", label: "Prefetch", num: true, sort: "prefetch_count",
        value: (c) => (c.global_prefetch_count ? `${c.prefetch_count || 0} / ${c.global_prefetch_count} (global)` : c.prefetch_count) },
      { key: "messages_unacknowledged", label: "Unacked", num: true, sort: "messages_unacknowledged" },
      { key: "messages_unconfirmed", label: "Unconfirmed", num: true, sort: "messages_unconfirmed" },
      { key: "publish", label: "Publish", num: true, sort: "message_stats.publish_details.rate",
        value: (c) => fmtRate(dig(c, "message_stats.publish_details.rate")) },
      { key: "deliver", label: "Deliver / get", num: true, sort: "message_stats.deliver_get_details.rate",
        value: (c) => fmtRate(dig(c, "message_stats.deliver_get_details.rate")) },
      { key: "ack", label: "Ack", num: true, sort: "message_stats.ack_details.rate",
        value: (c) => fmtRate(dig(c, "message_stats.ack_details.rate")) },
    ],
  });
}
