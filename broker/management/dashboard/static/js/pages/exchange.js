// One exchange: its details and rates (live), its bindings both ways, and a
// form to publish a message to it (or to trace where that message would go).

import { ApiError, PageError, api, get, path } from "../api.js";
import { clear, dig, fmtRate, fmtValue, h, headersEditor, kv, notice, table, tag } from "../dom.js";
import { exchangeSegment } from "./exchanges.js";
import { exchangeFeatures } from "./features.js";
import { pageLink } from "./listing.js";

/** A trace page link for a message: #/trace?vhost=...&exchange=...&routing_key=...&headers=... */
export function traceHash(vhost, exchange, routingKey, headers) {
  const params = new URLSearchParams({ vhost, exchange, routing_key: routingKey });
  if (headers && Object.keys(headers).length) params.set("headers", JSON.stringify(headers));
  return `#/trace?${params}`;
}

function destinationLink(b, vhost) {
  return b.destination_type === "queue"
    ? h("span", {}, tag("queue"), " ", pageLink(b.destination, "queues", vhost, b.destination))
    : h("span", {}, tag("exchange"), " ", pageLink(b.destination, "exchanges", vhost, exchangeSegment(b.destination)));
}

export default function exchange(ctx) {
  const [vhost, segment] = ctx.params;
  const name = segment === "amq.default" ? "" : segment;
  const base = path`/api/exchanges/${vhost}/${segment}`;
  const shown = name === "" ? "(AMQP default)" : name;

  const details = h("div", { class: "card", id: "exchange-details" });
  const outgoing = h("div", { class: "card", id: "exchange-bindings-source" });
  const incoming = h("div", { class: "card", id: "exchange-bindings-destination" });
  const result = h("p", { class: "banner", id: "publish-result", hidden: true, role: "status" });
  const headers = headersEditor("publish");

  const form = h("form", { class: "stack", id: "publish-form" },
    h("label", {}, "Routing key", h("input", { name: "routing_key", class: "wide", id: "publish-routing-key" })),
    headers.element,
    h("div", { class: "inline", style: "display:flex;gap:0.8rem;flex-wrap:wrap;margin:0.5rem 0" },
      h("label", {}, "Delivery mode", h("select", { name: "delivery_mode" },
        h("option", { value: "1" }, "1 - non-persistent"), h("option", { value: "2" }, "2 - persistent"))),
      h("label", {}, "content_type", h("input", { name: "content_type", placeholder: "text/plain" })),
      h("label", {}, "correlation_id", h("input", { name: "correlation_id" })),
      h("label", {}, "message_id", h("input", { name: "message_id" })),
      h("label", {}, "expiration (ms)", h("input", { name: "expiration", style: "width:8rem" })),
      h("label", {}, "priority", h("input", { name: "priority", type: "number", min: 0, max: 255, style: "width:6rem" }))),
    h("label", {}, "Payload", h("textarea", { name: "payload", id: "publish-payload" })),
    h("label", {}, "Payload encoding", h("select", { name: "payload_encoding" },
      h("option", { value: "string" }, "String"), h("option", { value: "base64" }, "base64"))),
    h("p", {},
      h("button", { type: "submit", id: "publish-submit" }, "Publish message"), " ",
      h("button", { type: "button", class: "secondary", id: "publish-trace" }, "Trace its route first")),
    result);

  function message() {
    const data = new FormData(form);
    const properties = { delivery_mode: Number(data.get("delivery_mode")) };
    for (const key of ["content_type", "correlation_id", "message_id", "expiration"]) {
      if (data.get(key)) properties[key] = data.get(key);
    }
    if (data.get("priority") !== "") properties.priority = Number(data.get("priority"));
    const hdrs = headers.value();
    if (Object.keys(hdrs).length) properties.headers = hdrs;
    return {
      properties,
      routing_key: data.get("routing_key"),
      payload: data.get("payload"),
      payload_encoding: data.get("payload_encoding"),
    };
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    let body;
    try {
      body = message();
    } catch (error) {
      notice(result, "error", error.message);
      return;
    }
    try {
      const answer = await api("POST", `${base}/publish`, body);
      notice(result, answer.routed ? "ok" : "info",
        answer.routed ? "Message published." : "Message published, but not routed (no queue got it).");
      controller.refresh().catch(() => {});
    } catch (error) {
      notice(result, "error", error instanceof ApiError ? error.describe() : String(error));
    }
  });
  form.querySelector("#publish-trace").addEventListener("click", () => {
    try {
      const hdrs = headers.value();
      ctx.navigate(traceHash(vhost, name, new FormData(form).get("routing_key"), hdrs));
    } catch (error) {
      notice(result, "error", error.message);
    }
  });

  ctx.root.append(
    h("p", {}, pageLink("\u2190 Exchanges", "exchanges")),
    h("h1", {}, "Exchange ", h("span", { class: "mono", id: "exchange-name" }, shown), " ", tag(`vhost ${vhost}`)),
    h("div", { class: "grid2" }, details, h("div", {}, outgoing, incoming)),
    h("div", { class: "card" }, h("h2", {}, "Publish message"),
      h("p", { class: "muted" }, "Publishes one message through the API, as a client would (it needs write permission)."),
      form),
  );

  function bindingTable(id, rows, otherEnd) {
    return table({
      id,
      columns: [
        { key: "end", label: otherEnd === "destination" ? "To" : "From",
          value: (b) => (otherEnd === "destination" ? destinationLink(b, vhost)
            : h("span", {}, tag("exchange"), " ", pageLink(b.source, "exchanges", vhost, exchangeSegment(b.source)))) },
        { key: "routing_key", label: "Routing key", value: (b) => h("span", { class: "mono" }, b.routing_key) },
        { key: "arguments", label: "Arguments",
          value: (b) => (Object.keys(b.arguments || {}).length ? fmtValue(b.arguments) : "\u2013") },
      ],
      rows,
      rowId: (b) => `${b.source}>${b.destination_type}:${b.destination}|${b.routing_key}`,
      empty: "None.",
    });
  }

  function render(x, from, to) {
    const stats = x.message_stats || {};
    clear(details).append(h("h2", {}, "Details"), kv([
      ["Type", x.type],
      ["Features", exchangeFeatures(x)],
      ["Arguments", Object.keys(x.arguments || {}).length ? fmtValue(x.arguments) : "none"],
      ["Message rate in", fmtRate(dig(stats, "publish_in_details.rate"))],
      ["Message rate out", fmtRate(dig(stats, "publish_out_details.rate"))],
      ["Policy", x.policy || "none"],
    ]));
    clear(outgoing).append(h("h2", {}, "Bindings from this exchange"),
      name === "" ? h("p", { class: "muted" }, "The default exchange routes to the queue named by the routing key; it has no explicit bindings.")
        : bindingTable("exchange-source-table", from, "destination"));
    clear(incoming).append(h("h2", {}, "Bindings to this exchange"), bindingTable("exchange-destination-table", to, "source"));
  }

  const controller = {
    async refresh() {
      let answers;
      try {
        answers = await Promise.all([get(base), get(`${base}/bindings/source`), get(`${base}/bindings/destination`)]);
      } catch (error) {
        if (error instanceof ApiError && error.status === 404 && error.path.startsWith(base)) {
          throw new PageError(`Exchange '${shown}' does not exist in vhost '${vhost}'.`);
        }
        throw error;
      }
      if (ctx.current) render(...answers);
    },
  };
  return controller;
}
