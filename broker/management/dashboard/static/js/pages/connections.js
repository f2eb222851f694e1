// Connections: every AMQP connection, its user, vhost, channels and traffic.

import { path } from "../api.js";
import { dig, fmtBytes, h, tag } from "../dom.js";
import { listPage } from "./listing.js";

function bytesRate(item, field) {
  const value = dig(item, field);
  return value === undefined ? "\u2013" : `${fmtBytes(value)}/s`;
}

function client(c) {
  const props = c.client_properties || {};
  const product = [props.product, props.version].filter(Boolean).join(" ");
  return product || "\u2013";
}

export default function connections(ctx) {
  return listPage(ctx, {
    key: "connections",
    title: "Connections",
    endpoint: (vhost) => (vhost ? path`/api/vhosts/${vhost}/connections` : "/api/connections"),
    sort: "name",
    empty: "No connections.",
    rowId: (c) => c.name,
    fields: [
      "name", "user_provided_name", "vhost", "user", "state", "protocol", "channels", "ssl",
      "client_properties", "recv_oct_details.rate", "send_oct_details.rate", "timeout", "auth_mechanism",
    ],
    columns: [
      { key: "name", label: "Name", sort: "name",
        value: (c) => h("span", {}, c.name, c.user_provided_name ? h("div", { class: "muted" }, c.user_provided_name) : null) },
      { key: "vhost", label: "Vhost", sort: "vhost", allVhostsOnly: true },
      { key: "user", label: "User", sort: "user" },
      { key: "state", label: "State", sort: "state" },
      { key: "ssl", label: "TLS", value: (c) => (c.ssl ? tag("TLS", "on") : "\u2013") },
      { key: "protocol", label: "Protocol", sort: "protocol" },
      { key: "client", label: "Client", value: client },
      { key: "channels", label: "Channels", num: true, sort: "channels" },
      { key: "timeout", label: "Heartbeat", num: true, sort: "timeout", value: (c) => (c.timeout ? `${c.timeout} s` : "\u2013") },
      { key: "recv", label: "From client", num: true, sort: "recv_oct_details.rate", value: (c) => bytesRate(c, "recv_oct_details.rate") },
      { key: "send", label: "To client", num: true, sort: "send_oct_details.rate", value: (c) => bytesRate(c, "send_oct_details.rate") },
    ],
  });
}
