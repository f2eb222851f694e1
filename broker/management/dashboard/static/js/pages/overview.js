// Overview: the broker's totals, message rates and queued messages, with charts
// drawn from the samples this tab has collected since it opened (one per poll),
// and the cluster this node belongs to (GET /api/cluster, docs/cluster.md).

import { ApiError, get } from "../api.js";
import { Samples, lineChart } from "../chart.js";
import { clear, dig, fmtBytes, fmtInt, fmtRate, h, kv, table, tag } from "../dom.js";

const RATES = [
  { name: "publish", label: "Publish", color: "#2f6db5" },
  { name: "deliver_get", label: "Deliver / get", color: "#d9822b" },
  { name: "ack", label: "Consumer ack", color: "#3a9a5b", dashed: true },
  { name: "confirm", label: "Publisher confirm", color: "#8a4fb3", dashed: true },
  { name: "redeliver", label: "Redelivered", color: "#c23b5e" },
];
const QUEUED = [
  { name: "messages_ready", label: "Ready", color: "#2f6db5" },
  { name: "messages_unacknowledged", label: "Unacked", color: "#d9822b" },
  { name: "messages", label: "Total", color: "#3a9a5b" },
];
const OTHER_RATES = [
  ["get", "Get (manual ack)"], ["get_no_ack", "Get (auto ack)"], ["get_empty", "Get, empty"],
  ["deliver_no_ack", "Deliver (auto ack)"], ["return_unroutable", "Returned unroutable"],
  ["drop_unroutable", "Dropped unroutable"], ["disk_writes", "Disk writes"], ["disk_reads", "Disk reads"],
];
const TOTALS = [
  ["connections", "Connections"], ["channels", "Channels"], ["exchanges", "Exchanges"],
  ["queues", "Queues"], ["consumers", "Consumers"],
];

// Kept while the tab lives, so the charts go on where they were after a visit elsewhere.
const rateSamples = new Samples(RATES.map((r) => r.name));
const queuedSamples = new Samples(QUEUED.map((r) => r.name));

/** The Cluster panel's content: "single node", or the cluster, the leader and the followers. */
function clusterPanel(state) {
  const title = h("h2", {}, "Cluster");
  if (state instanceof ApiError) {
    return [title, h("p", { class: "muted", id: "cluster-unavailable" }, `Unavailable: ${state.describe()}`)];
  }
  if (state === null) {
    return [title, h("p", { class: "muted", id: "cluster-unavailable" },
      "Shown to users with the monitoring or administrator tag.")];
  }
  if (!state.cluster) {
    return [title, h("p", { id: "cluster-single" }, "Single node (no cluster).")];
  }
  const replication = state.replication || {};
  const followers = replication.followers || [];
  const leader = state.leader
    ? [state.leader, state.leader_amqp ? h("span", { class: "muted" }, ` (AMQP ${state.leader_amqp})`) : null]
    : tag("none", "warn");
  const wanted = replication.min_followers || 0;
  const acking = followers.filter((f) => f.caught_up).length;
  const inSync = followers.filter((f) => f.in_sync).length;
  return [
    title,
    h("div", { id: "cluster-summary" }, kv([
      ["Cluster", state.cluster],
      ["This node", [state.node, " ", tag(state.role, state.role === "leader" ? "on" : "")]],
      ["Leader", leader],
      ["Term", fmtInt(state.term)],
      ["Confirms", state.confirms || "\u2013"],
    ])),
    inSync < wanted
      ? h("p", { class: "banner error", id: "cluster-waiting" },
        `${inSync} of the ${wanted} follower(s) publisher confirms wait for `
        + "are in sync: confirms are held until enough are.")
      : null,
    h("h3", {}, `Followers (${followers.length}, ${acking} caught up)`),
    table({
      id: "cluster-followers",
      columns: [
        { key: "node", label: "Node" },
        { key: "in_sync", label: "In sync",
          value: (f) => (f.in_sync ? tag("yes", "on") : tag("no", "warn")) },
        { key: "caught_up", label: "Caught up",
          value: (f) => (f.caught_up ? tag("yes", "on") : tag("no", "warn")) },
        { key: "batches_behind", label: "Batches behind", num: true },
        { key: "queued_bytes", label: "Queued", num: true, value: (f) => fmtBytes(f.queued_bytes) },
      ],
      rows: followers,
      rowId: (f) => f.node,
      empty: "No follower connected.",
    }),
  ];
}

function stat(id, label, value) {
  return h("div", { class: "stat", id: `total-${id}` },
    h("div", { class: "label" }, label), h("div", { class: "value" }, value));
}

export default function overview(ctx) {
  const title = h("h1", {}, "Overview");
  const about = h("p", { class: "muted", id: "overview-about" });
  const totals = h("div", { class: "cards", id: "overview-totals" });
  const queuedChart = h("div", { class: "card", id: "chart-queued-card" });
  const ratesChart = h("div", { class: "card", id: "chart-rates-card" });
  const moreRates = h("div", { class: "card", id: "overview-more-rates" });
  const listeners = h("div", { class: "card", id: "overview-listeners" });
  const cluster = h("div", { class: "card", id: "overview-cluster" });
  ctx.root.append(title, about, totals, h("div", { class: "grid2" }, queuedChart, ratesChart),
    h("div", { class: "grid2" }, moreRates, listeners), cluster);
  // GET /api/cluster is for monitoring users (as /api/nodes): others are not sent
  // asking, which would only fill the browser's log with 401s.
  const tags = (ctx.user && ctx.user.tags) || [];
  const seesCluster = tags.includes("administrator") || tags.includes("monitoring");

  function render(data, clusterInfo) {
    const objects = data.object_totals || {};
    const queued = data.queue_totals || {};
    const stats = data.message_stats || {};
    about.textContent = [
      `${data.product_name || "Warren"} ${data.product_version || data.rabbitmq_version || ""}`.trim(),
      data.node ? `node ${data.node}` : "",
      data.cluster_name ? `cluster ${data.cluster_name}` : "",
      data.management_version ? `management API ${data.management_version}` : "",
    ].filter(Boolean).join(" \u00b7 ");
    clear(totals).append(
      ...TOTALS.map(([key, label]) => stat(key, label, fmtInt(objects[key]))),
      stat("messages_ready", "Ready", fmtInt(queued.messages_ready)),
      stat("messages_unacknowledged", "Unacked", fmtInt(queued.messages_unacknowledged)),
      stat("messages", "Total messages", fmtInt(queued.messages)),
    );
    clear(queuedChart).append(h("h2", {}, "Queued messages"),
      lineChart(queuedSamples, QUEUED, { format: fmtInt, id: "chart-queued", title: "Queued messages" }));
    clear(ratesChart).append(h("h2", {}, "Message rates"),
      lineChart(rateSamples, RATES, { format: fmtRate, id: "chart-rates", title: "Message rates" }));
    clear(moreRates).append(h("h2", {}, "Other rates and totals"), kv(OTHER_RATES
      .filter(([key]) => stats[key] !== undefined)
      .map(([key, label]) => [label, `${fmtRate(dig(stats, `${key}_details.rate`))} (${fmtInt(stats[key])} in all)`])));
    if (!moreRates.querySelector("dt")) moreRates.append(h("p", { class: "muted" }, "No traffic yet."));
    clear(listeners).append(h("h2", {}, "Listeners"), table({
      id: "listeners",
      columns: [
        { key: "protocol", label: "Protocol" },
        { key: "ip_address", label: "Bound to" },
        { key: "port", label: "Port", num: true, value: (l) => String(l.port) },
      ],
      rows: data.listeners || [],
      empty: "No listeners reported.",
    }));
    clear(cluster).append(...clusterPanel(clusterInfo).filter(Boolean));
  }

  /** The cluster's state, null when this user may not see it, the ApiError when it failed. */
  async function clusterState() {
    if (!seesCluster) return null;
    try {
      return await get("/api/cluster");
    } catch (error) {
      if (error instanceof ApiError) return error; // shown in the panel; the rest of the page stands
      throw error;
    }
  }

  return {
    async refresh() {
      const [data, state] = await Promise.all([get("/api/overview"), clusterState()]);
      if (!ctx.current) return;
      const now = Date.now();
      const stats = data.message_stats || {};
      rateSamples.add(now, Object.fromEntries(RATES.map((r) => [r.name, dig(stats, `${r.name}_details.rate`) || 0])));
      queuedSamples.add(now, data.queue_totals || {});
      render(data, state);
    },
  };
}
