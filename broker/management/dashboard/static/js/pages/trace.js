// The route tracer: which queues would a message reach, and why, with the
// chain of bindings to each (POST /api/warren/trace/{vhost}, what `warren
// route` prints). Nothing is published: the broker only runs its routing
// code over the live topology.

import { ApiError, api, get, path } from "../api.js";
import { clear, fmtValue, h, headersEditor, notice, table, tag } from "../dom.js";
import { exchangeSegment } from "./exchanges.js";
import { pageLink } from "./listing.js";

function exchangeLabel(name) {
  return name === "" ? "(AMQP default)" : name;
}

function node(kind, name, vhost) {
  const link = kind === "queue"
    ? pageLink(name, "queues", vhost, name)
    : pageLink(exchangeLabel(name), "exchanges", vhost, exchangeSegment(name));
  return h("span", { class: `node ${kind}`, title: kind }, `${kind} `, link);
}

function argumentsText(args) {
  return Object.entries(args || {}).map(([k, v]) => `${k}=${fmtValue(v)}`).join(" ");
}

function edgeText(hop) {
  if (hop.via === "alternate-exchange") return "matched nothing: alternate exchange";
  if (hop.via === "default-exchange") return `routing key '${hop.matched_key}' names the queue`;
  if (hop.source_type === "fanout") return "fanout: every binding matches";
  if (hop.matched_key === null) {
    const args = argumentsText(hop.arguments);
    return `headers ${args || "(none: x-match all)"}`;
  }
  const args = argumentsText(hop.arguments);
  return `key '${hop.routing_key}'${args ? ` ${args}` : ""} matched '${hop.matched_key}'`;
}

function chain(hops, vhost) {
  const parts = [node("exchange", hops[0].source, vhost)];
  for (const hop of hops) {
    parts.push(h("span", { class: "edge", title: hop.description }, edgeText(hop)));
    parts.push(node(hop.destination_type, hop.destination, vhost));
  }
  return h("div", { class: "chain" }, parts);
}

export default function trace(ctx) {
  const q = ctx.query;
  const vhosts = ctx.vhosts.length ? ctx.vhosts : ["/"];
  const initialVhost = q.get("vhost") || ctx.vhost || (vhosts.includes("/") ? "/" : vhosts[0]);
  const vhostSelect = h("select", { name: "vhost", id: "trace-vhost" },
    vhosts.map((v) => h("option", { value: v, selected: v === initialVhost }, v)));
  const exchangeList = h("datalist", { id: "trace-exchanges" });
  const exchangeInput = h("input", {
    name: "exchange", id: "trace-exchange", list: "trace-exchanges", class: "wide",
    placeholder: "exchange name (empty: the default exchange)", value: q.get("exchange") || "",
  });
  const keyInput = h("input", { name: "routing_key", id: "trace-routing-key", class: "wide", value: q.get("routing_key") || "" });
  const headers = headersEditor("trace");
  if (q.get("headers")) {
    try {
      headers.set(JSON.parse(q.get("headers")));
    } catch {
      /* a hand-edited link: start with no headers */
    }
  }
  const error = h("p", { class: "banner", id: "trace-error", hidden: true, role: "alert" });
  const results = h("div", { id: "trace-results" });

  const form = h("form", { class: "stack card", id: "trace-form" },
    h("div", { style: "display:flex;gap:1rem;flex-wrap:wrap" },
      h("label", {}, "Vhost", vhostSelect),
      h("label", {}, "Exchange", exchangeInput),
      h("label", {}, "Routing key", keyInput)),
    headers.element,
    h("p", { class: "muted" }, "CC and BCC headers (JSON lists of strings) add routing keys, as RabbitMQ's "
      + "sender-selected distribution does."),
    h("button", { type: "submit", id: "trace-submit" }, "Trace route"),
    error);

  async function loadExchanges() {
    // Only for suggestions in the exchange field: the tracer works without them.
    try {
      const list = await get(`${path`/api/exchanges/${vhostSelect.value}`}?columns=name,type`);
      clear(exchangeList).append(...list.map((x) => h("option", { value: x.name }, `${exchangeLabel(x.name)} (${x.type})`)));
    } catch (failure) {
      clear(exchangeList);
      if (!(failure instanceof ApiError)) throw failure;
    }
  }
  vhostSelect.addEventListener("change", () => loadExchanges());

  function render(answer) {
    const vhost = answer.vhost;
    const summary = answer.routed
      ? `Reaches ${answer.queues.length} queue${answer.queues.length === 1 ? "" : "s"}: ${answer.queues.map((x) => x.name).join(", ")}.`
      : "Unroutable: the message reaches no queue.";
    clear(results).append(
      h("div", { class: "card" },
        h("h2", {}, "Result"),
        h("p", { class: `banner ${answer.routed ? "ok" : "error"}`, id: "trace-summary" }, summary),
        h("p", { class: "muted" },
          `Published to ${answer.exchange === "" ? "the default exchange" : `exchange '${answer.exchange}'`} `
          + `(${answer.exchange_type}) with routing key${answer.routing_keys.length === 1 ? "" : "s"} `,
          answer.routing_keys.map((k, i) => [i ? ", " : "", h("code", {}, `'${k}'`)]),
          answer.exchange_type === "headers" ? " (a headers exchange: the key plays no part)" : ""),
        answer.notes.map((note) => h("p", { class: "banner info" }, note)),
        answer.queues.map((queue) => h("div", { class: "route", "data-queue": queue.name },
          h("h3", {}, "Queue ", h("span", { class: "mono" }, queue.name)),
          chain(queue.hops, vhost),
          h("ol", { class: "muted" }, queue.hops.map((hop) => h("li", {}, hop.description))))),
        answer.unroutable ? h("div", { id: "trace-unroutable" },
          h("ul", {}, answer.unroutable.reasons.map((r) => h("li", {}, r))),
          h("p", { class: "muted" }, answer.unroutable.outcome)) : null),
      h("div", { class: "card" }, h("h2", {}, "Exchanges crossed"), table({
        id: "trace-exchange-table",
        columns: [
          { key: "name", label: "Exchange", value: (x) => node("exchange", x.name, vhost) },
          { key: "type", label: "Type" },
          { key: "bindings", label: "Bindings", num: true },
          { key: "outcome", label: "Outcome",
            value: (x) => h("span", { class: `outcome-${x.outcome}` }, x.outcome.replace("_", " ")) },
          { key: "explanation", label: "Why" },
          { key: "alternate_exchange", label: "Alternate exchange",
            value: (x) => (x.alternate_exchange === null ? "\u2013"
              : h("span", {}, x.alternate_exchange, " ", x.alternate_exchange_used ? tag("used", "warn") : tag("not used"))) },
        ],
        rows: answer.exchanges,
        rowId: (x) => x.name,
      })),
      h("details", { class: "card" }, h("summary", {}, "As ", h("code", {}, "warren route"), " prints it"),
        h("pre", { id: "trace-text" }, answer.text)),
    );
  }

  async function run() {
    notice(error, "error", "");
    let hdrs;
    try {
      hdrs = headers.value();
    } catch (failure) {
      notice(error, "error", failure.message);
      return;
    }
    const body = { exchange: exchangeInput.value, routing_key: keyInput.value, headers: hdrs };
    try {
      const answer = await api("POST", path`/api/warren/trace/${vhostSelect.value}`, body);
      if (ctx.current) render(answer);
    } catch (failure) {
      clear(results);
      notice(error, "error", failure instanceof ApiError ? failure.describe() : String(failure));
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    run();
  });

  ctx.root.append(
    h("h1", {}, "Route tracer"),
    h("p", { class: "muted" }, "Which queues would a message published to an exchange reach, and why? "
      + "The broker runs its own routing over the live bindings (exchange-to-exchange bindings, alternate "
      + "exchanges, CC/BCC, headers) and nothing is published."),
    form, exchangeList, results,
  );
  loadExchanges();
  if (q.get("exchange") !== null) run();
  return {}; // nothing to poll: a trace runs when asked
}
