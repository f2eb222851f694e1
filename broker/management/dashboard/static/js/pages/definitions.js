// Definitions: export (download) and import (upload) the broker's users, vhosts,
// permissions, queues, exchanges and bindings, as RabbitMQ's JSON document.

import { ApiError, api, path } from "../api.js";
import { h, notice } from "../dom.js";

function vhostOptions(vhosts) {
  return [h("option", { value: "" }, "All (the whole broker)"), vhosts.map((v) => h("option", { value: v }, v))];
}

export default function definitions(ctx) {
  const exportResult = h("p", { class: "banner", id: "export-result", hidden: true, role: "status" });
  const importResult = h("p", { class: "banner", id: "import-result", hidden: true, role: "status" });
  const exportVhost = h("select", { id: "export-vhost" }, vhostOptions(ctx.vhosts));
  const importVhost = h("select", { id: "import-vhost" }, vhostOptions(ctx.vhosts));
  const file = h("input", { type: "file", id: "import-file", accept: ".json,application/json" });

  const exportButton = h("button", { type: "button", id: "export-download" }, "Download definitions");
  exportButton.addEventListener("click", async () => {
    const vhost = exportVhost.value;
    try {
      const document_ = await api("GET", vhost ? path`/api/definitions/${vhost}` : "/api/definitions");
      const text = JSON.stringify(document_, null, 2);
      const stamp = new Date().toISOString().slice(0, 19).replace(/[:T]/g, "-");
      const name = `warren-definitions${vhost ? `-${vhost.replace(/[^A-Za-z0-9_.-]/g, "_")}` : ""}-${stamp}.json`;
      const url = URL.createObjectURL(new Blob([text], { type: "application/json" }));
      const link = h("a", { href: url, download: name, id: "export-link" });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      const counts = ["users", "vhosts", "queues", "exchanges", "bindings"]
        .filter((key) => Array.isArray(document_[key]))
        .map((key) => `${document_[key].length} ${key}`).join(", ");
      notice(exportResult, "ok", `Downloaded ${name} (${counts}).`);
    } catch (error) {
      notice(exportResult, "error", error instanceof ApiError ? error.describe() : String(error));
    }
  });

  const importButton = h("button", { type: "button", id: "import-upload" }, "Upload definitions");
  importButton.addEventListener("click", async () => {
    const chosen = file.files[0];
    if (!chosen) {
      notice(importResult, "error", "Choose a definitions file (JSON) first.");
      return;
    }
    const text = await chosen.text();
    try {
      JSON.parse(text);
    } catch {
      notice(importResult, "error", `${chosen.name} is not JSON.`);
      return;
    }
    const vhost = importVhost.value;
    try {
      await api("POST", vhost ? path`/api/definitions/${vhost}` : "/api/definitions", text);
      notice(importResult, "ok", `Imported ${chosen.name}${vhost ? ` into vhost '${vhost}'` : ""}.`);
    } catch (error) {
      notice(importResult, "error", error instanceof ApiError ? error.describe() : String(error));
    }
  });

  ctx.root.append(
    h("h1", {}, "Definitions"),
    h("div", { class: "card" }, h("h2", {}, "Export"),
      h("p", { class: "muted" }, "Users (with password hashes), vhosts, permissions, queues, exchanges and "
        + "bindings as one JSON document, in the format of RabbitMQ's management API (",
        h("code", {}, "warren config from-definitions"), " reads it too)."),
      h("div", { class: "inline" }, h("label", {}, "Vhost", exportVhost), " ", exportButton),
      exportResult),
    h("div", { class: "card" }, h("h2", {}, "Import"),
      h("p", { class: "muted" }, "Adds what the file defines to the broker (existing objects are kept). "
        + "With a vhost chosen, the file's queues, exchanges and bindings go into that vhost."),
      h("div", { class: "inline" }, h("label", {}, "Definitions file", file), " ",
        h("label", {}, "Into vhost", importVhost), " ", importButton),
      importResult),
  );
  return {}; // nothing to poll
}
