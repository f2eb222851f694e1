// Exchanges: every exchange of the chosen vhost, with its publish rates.

import { path } from "../api.js";
import { dig, fmtRate } from "../dom.js";
import { exchangeFeatures } from "./features.js";
import { listPage, pageLink } from "./listing.js";

/** The default exchange is "" in the API's bodies and "amq.default" in its paths. */
export function exchangeSegment(name) {
  return name === "" ? "amq.default" : name;
}

export default function exchanges(ctx) {
  return listPage(ctx, {
    key: "exchanges",
    title: "Exchanges",
    endpoint: (vhost) => (vhost ? path`/api/exchanges/${vhost}` : "/api/exchanges"),
    sort: "name",
    empty: "No exchanges.",
    rowId: (x) => `${x.vhost}/${x.name}`,
    fields: [
      "name", "vhost", "type", "durable", "auto_delete", "internal", "arguments",
      "message_stats.publish_in_details.rate", "message_stats.publish_out_details.rate",
    ],
    columns: [
      { key: "vhost", label: "Vhost", sort: "vhost", allVhostsOnly: true },
      { key: "name", label: "Name", sort: "name",
        value: (x) => pageLink(x.name === "" ? "(AMQP default)" : x.name, "exchanges", x.vhost, exchangeSegment(x.name)) },
      { key: "type", label: "Type", sort: "type" },
      { key: "features", label: "Features", value: exchangeFeatures },
      { key: "in_rate", label: "Message rate in", num: true, sort: "message_stats.publish_in_details.rate",
        value: (x) => fmtRate(dig(x, "message_stats.publish_in_details.rate")) },
      { key: "out_rate", label: "Message rate out", num: true, sort: "message_stats.publish_out_details.rate",
        value: (x) => fmtRate(dig(x, "message_stats.publish_out_details.rate")) },
    ],
  });
}
