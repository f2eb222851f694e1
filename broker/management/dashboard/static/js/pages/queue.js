// One queue: its counts (live), bindings, consumers; get messages; purge.

import { ApiError, PageError, api, get, path } from "../api.js";
import { Samples, lineChart } from "../chart.js";
import {
  clear, confirmDialog, dig, fmtBytes, fmtInt, fmtRate, fmtValue, h, kv, notice, table, tag,
} from "../dom.js";
import { exchangeSegment } from "./exchanges.js";
import { queueFeatures } from "./features.js";
import { pageLink } from "./listing.js";

const ACKMODES = [
  ["ack_requeue_true", "Requeue them (nack, requeue): the queue keeps them"],
  ["ack_requeue_false", "Ack them: they leave the queue"],
  ["reject_requeue_true", "Reject, requeue"],
  ["reject_requeue_false", "Reject, no requeue: dead-lettered or dropped"],
];
const QUEUED = [
  { name: "messages_ready", label: "Ready", color: "#2f6db5" },
  { name: "messages_unacknowledged", label: "Unacked", color: "#d9822b" },
];

let samples = { key: null, data: null };

function samplesFor(key) {
  if (samples.key !== key) samples = { key, data: new Samples(QUEUED.map((s) => s.name)) };
  return samples.data;
}

function stat(id, label, value) {
  return h("div", { class: "stat", id: `queue-${id}` }, h("div", { class: "label" }, label),
    h("div", { class: "value" }, value));
}

function messageCard(message, index) {
  const props = message.properties || {};
  const headers = props.headers || {};
  const rest = Object.entries(props).filter(([name]) => name !== "headers");
  return h("div", { class: "message", "data-message": index },
    h("h3", {}, `Message ${index + 1}`),
    kv([
      ["Exchange", message.exchange === "" ? "(AMQP default)" : message.exchange],
      ["Routing key", message.routing_key],
      ["Redelivered", message.redelivered ? "yes" : "no"],
      ["Left in queue", fmtInt(message.message_count)],
      ...rest.map(([name, value]) => [name, fmtValue(value)]),
      ...Object.entries(headers).map(([name, value]) => [`header ${name}`, fmtValue(value)]),
      ["Payload", `${fmtInt(message.payload_bytes)} bytes, encoding: ${message.payload_encoding}`],
    ]),
    h("pre", { class: "payload" }, message.payload));
}

export default function queue(ctx) {
  const [vhost, name] = ctx.params;
  const base = path`/api/queues/${vhost}/${name}`;
  const queued = samplesFor(`${vhost}\u0000${name}`);

  const result = h("p", { class: "banner", id: "queue-result", hidden: true, role: "status" });
  const counts = h("div", { class: "cards", id: "queue-counts" });
  const details = h("div", { class: "card", id: "queue-details" });
  const chart = h("div", { class: "card", id: "queue-chart" });
  const consumers = h("div", { class: "card", id: "queue-consumers" });
  const bindings = h("div", { class: "card", id: "queue-bindings" });
  const messages = h("div", { id: "get-results" });
  let ready = 0;

  const getForm = h("form", { class: "inline", id: "get-form" },
    h("label", {}, "Messages", h("input", { type: "number", name: "count", min: 1, value: "1", style: "width:6rem" })),
    h("label", {}, "Then", h("select", { name: "ackmode" },
      ACKMODES.map(([value, label]) => h("option", { value }, label)))),
    h("label", {}, "Encoding", h("select", { name: "encoding" },
      h("option", { value: "auto" }, "Auto (string if UTF-8 text)"), h("option", { value: "base64" }, "base64"))),
    h("label", {}, "Truncate at (bytes)", h("input", { type: "number", name: "truncate", min: 0, value: "50000", style: "width:8rem" })),
    h("button", { type: "submit", id: "get-submit" }, "Get messages"));

  getForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = new FormData(getForm);
    const body = {
      count: Number(form.get("count")) || 1,
      ackmode: form.get("ackmode"),
      encoding: form.get("encoding"),
      truncate: Number(form.get("truncate")) || 50000,
    };
    try {
      const got = await api("POST", `${base}/get`, body);
      clear(messages).append(...(got.length
        ? got.map((message, index) => messageCard(message, index))
        : [h("p", { class: "muted", id: "get-empty" }, "Queue is empty.")]));
      notice(result, "ok", got.length ? `Got ${got.length} message${got.length === 1 ? "" : "s"}.` : "");
      controller.refresh().catch(() => {});
    } catch (error) {
      notice(result, "error", error instanceof ApiError ? error.describe() : String(error));
    }
  });

  const purge = h("button", { type: "button", class: "danger", id: "purge" }, "Purge messages");
  purge.addEventListener("click", async () => {
    const sure = await confirmDialog(
      `Purge queue '${name}' in vhost '${vhost}'? Its ${fmtInt(ready)} ready message(s) are deleted.`, "Purge");
    if (!sure) return;
    try {
      await api("DELETE", `${base}/contents`);
      notice(result, "ok", `Queue '${name}' purged.`);
      await controller.refresh();
    } catch (error) {
      notice(result, "error", error instanceof ApiError ? error.describe() : String(error));
    }
  });

  ctx.root.append(
    h("p", {}, pageLink("\u2190 Queues", "queues")),
    h("h1", {}, "Queue ", h("span", { class: "mono", id: "queue-name" }, name), " ", tag(`vhost ${vhost}`)),
    result, counts,
    h("div", { class: "grid2" }, details, chart),
    consumers, bindings,
    h("div", { class: "card" }, h("h2", {}, "Get messages"),
      h("p", { class: "muted" }, "Getting messages is destructive unless they are requeued: "
        + "a requeued message comes back marked redelivered."),
      getForm, messages),
    h("div", { class: "card" }, h("h2", {}, "Purge"),
      h("p", { class: "muted" }, "Delete every ready message of the queue (unacked ones stay with their consumers)."),
      purge),
  );

  function render(q, bound) {
    ready = q.messages_ready || 0;
    const stats = q.message_stats || {};
    clear(counts).append(
      stat("ready", "Ready", fmtInt(q.messages_ready)),
      stat("unacked", "Unacked", fmtInt(q.messages_unacknowledged)),
      stat("total", "Total", fmtInt(q.messages)),
      stat("consumers", "Consumers", fmtInt(q.consumers)),
      stat("incoming", "Incoming", fmtRate(dig(stats, "publish_details.rate"))),
      stat("deliver", "Deliver / get", fmtRate(dig(stats, "deliver_get_details.rate"))),
      stat("ack", "Ack", fmtRate(dig(stats, "ack_details.rate"))),
    );
    clear(details).append(h("h2", {}, "Details"), kv([
      ["Type", q.type || "classic"],
      ["State", q.state || "\u2013"],
      ["Features", queueFeatures(q)],
      ["Arguments", Object.keys(q.arguments || {}).length ? fmtValue(q.arguments) : "none"],
      ["Policy", q.policy || "none"],
      ["Operator policy", q.operator_policy || "none"],
      ["Effective policy definition", Object.keys(q.effective_policy_definition || {}).length
        ? fmtValue(q.effective_policy_definition) : "none"],
      ...(q.single_active_consumer_tag !== undefined && (q.arguments || {})["x-single-active-consumer"]
        ? [["Single active consumer", q.single_active_consumer_tag || "none"]] : []),
      ["Exclusive to", q.exclusive ? (q.owner_pid_details && q.owner_pid_details.name) || "its connection" : "\u2013"],
      ["Consumer capacity", q.consumer_capacity === undefined ? "\u2013" : `${Math.round(q.consumer_capacity * 100)}%`],
      ["Message bytes", fmtBytes(q.message_bytes)],
      ["Memory", fmtBytes(q.memory)],
      ["Idle since", q.idle_since || "\u2013"],
      ["Node", q.node || "\u2013"],
    ]));
    clear(chart).append(h("h2", {}, "Queued messages"),
      lineChart(queued, QUEUED, { format: fmtInt, id: "chart-queue", title: "Queued messages" }));
    clear(consumers).append(h("h2", {}, `Consumers (${(q.consumer_details || []).length})`), table({
      id: "queue-consumer-table",
      columns: [
        { key: "channel_details.name", label: "Channel" },
        { key: "consumer_tag", label: "Consumer tag" },
        { key: "ack_required", label: "Ack required", value: (c) => (c.ack_required ? "yes" : "no") },
        { key: "exclusive", label: "Exclusive", value: (c) => (c.exclusive ? "yes" : "no") },
        { key: "prefetch_count", label: "Prefetch", num: true },
        { key: "activity_status", label: "Activity" },
        { key: "arguments", label: "Arguments",
          value: (c) => (Object.keys(c.arguments || {}).length ? fmtValue(c.arguments) : "\u2013") },
      ],
      rows: q.consumer_details || [],
      empty: "No consumers.",
    }));
    clear(bindings).append(h("h2", {}, "Bindings"), table({
      id: "queue-binding-table",
      columns: [
        { key: "source", label: "From exchange",
          value: (b) => (b.source === "" ? h("span", { class: "muted" }, "(AMQP default)")
            : pageLink(b.source, "exchanges", b.vhost, exchangeSegment(b.source))) },
        { key: "routing_key", label: "Routing key", value: (b) => h("span", { class: "mono" }, b.routing_key) },
        { key: "arguments", label: "Arguments",
          value: (b) => (Object.keys(b.arguments || {}).length ? fmtValue(b.arguments) : "\u2013") },
      ],
      rows: bound,
      rowId: (b) => `${b.source}|${b.routing_key}`,
      empty: "No bindings.",
    }));
  }

  const controller = {
    async refresh() {
      let q;
      let bound;
      try {
        [q, bound] = await Promise.all([get(base), get(`${base}/bindings`)]);
      } catch (error) {
        if (error instanceof ApiError && error.status === 404 && error.path === base) {
          throw new PageError(`Queue '${name}' does not exist in vhost '${vhost}'.`);
        }
        throw error;
      }
      if (!ctx.current) return;
      queued.add(Date.now(), q);
      render(q, bound);
    },
  };
  return controller;
}
