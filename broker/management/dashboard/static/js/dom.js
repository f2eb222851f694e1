// Small DOM helpers. Every text from the broker goes in with textContent, never
// as HTML: queue names, payloads and headers may hold anything.

/** h("a", {href: "#/x", class: "c", onclick: f}, "text", child, [more]) */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "value") node.value = value;
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(child instanceof Node ? child : String(child));
  }
}

export function clear(node) {
  node.replaceChildren();
  return node;
}

/** The value at a dotted path ("message_stats.publish_details.rate"), or undefined. */
export function dig(object, dotted) {
  let value = object;
  for (const key of dotted.split(".")) {
    if (value === null || value === undefined || typeof value !== "object") return undefined;
    value = value[key];
  }
  return value;
}

export function fmtInt(value) {
  if (value === undefined || value === null || value === "") return "\u2013";
  if (typeof value !== "number") return String(value);
  return value.toLocaleString("en-US");
}

export function fmtRate(value) {
  if (value === undefined || value === null) return "\u2013";
  const digits = value !== 0 && Math.abs(value) < 10 ? 1 : 0;
  return `${value.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits })}/s`;
}

export function fmtBytes(value) {
  if (value === undefined || value === null) return "\u2013";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let n = value;
  let unit = 0;
  while (n >= 1024 && unit < units.length - 1) {
    n /= 1024;
    unit += 1;
  }
  return `${n.toLocaleString("en-US", { maximumFractionDigits: unit ? 1 : 0 })} ${units[unit]}`;
}

export function fmtTime(ms) {
  if (!ms) return "\u2013";
  return new Date(ms).toLocaleString();
}

export function fmtValue(value) {
  if (value === undefined) return "\u2013";
  if (value === null) return "null";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

/** A vhost's name as the lists show it. */
export function vhostLabel(name) {
  return name === "/" ? "/" : name;
}

export function tag(text, kind = "", title = "") {
  return h("span", { class: `tag ${kind}`.trim(), title: title || undefined }, text);
}

/** A <dl> of [label, value] pairs (value: text or node). */
export function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.map(([label, value]) => [h("dt", {}, label), h("dd", {}, value)]));
}

/**
 * A table. columns: [{key, label, num, sort (a field for ?sort=), value(row) -> text|node}].
 * sort: {field, reverse} and onSort(field) make the sortable headers clickable.
 */
export function table({ columns, rows, empty = "Nothing here.", sort, onSort, id, rowId }) {
  const head = h("tr", {}, columns.map((column) => {
    const sortable = Boolean(column.sort && onSort);
    const sorted = sortable && sort && sort.field === column.sort;
    const classes = [column.num ? "num" : "", sortable ? "sortable" : "", sorted ? "sorted" : "",
      sorted && sort.reverse ? "reverse" : ""].filter(Boolean).join(" ");
    return h("th", {
      class: classes || undefined,
      title: sortable ? "Sort by this column" : undefined,
      onclick: sortable ? () => onSort(column.sort) : undefined,
    }, column.label);
  }));
  const body = h("tbody");
  if (!rows.length) {
    body.append(h("tr", {}, h("td", { class: "empty", colspan: columns.length }, empty)));
  }
  for (const row of rows) {
    body.append(h("tr", { "data-row": rowId ? rowId(row) : undefined }, columns.map((column) => {
      const value = column.value ? column.value(row) : dig(row, column.key);
      const shown = value instanceof Node ? value : column.num ? fmtInt(value) : fmtValue(value);
      return h("td", { class: column.num ? "num" : undefined, "data-col": column.key || undefined }, shown);
    })));
  }
  return h("div", { class: "table-wrap" }, h("table", { id }, h("thead", {}, head), body));
}

/** Show `text` in a banner element (kind: ok, error, info); empty text hides it. */
export function notice(element, kind, text) {
  element.className = `banner ${kind}`;
  element.textContent = text || "";
  element.hidden = !text;
}

/** An in-page confirmation (the <dialog> in index.html); resolves to true for OK. */
export function confirmDialog(text, okLabel = "OK") {
  const dialog = document.getElementById("confirm-dialog");
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = okLabel;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
  });
}

/**
 * Rows of header name / value / type, for publishing and tracing. value()
 * gives the headers as a JSON object (numbers, booleans, arrays and tables
 * typed as chosen) or throws an Error saying which row is wrong.
 */
export function headersEditor(idPrefix) {
  const rows = h("div", { class: "header-rows", id: `${idPrefix}-headers` });
  const types = [["string", "String"], ["number", "Number"], ["boolean", "Boolean"], ["json", "JSON (list, table)"]];

  function addRow(name = "", value = "", type = "string") {
    const row = h("div", { class: "row" },
      h("input", { placeholder: "header", class: "header-name", value: name, "aria-label": "Header name" }),
      h("input", { placeholder: "value", class: "header-value", value, "aria-label": "Header value" }),
      h("select", { class: "header-type", "aria-label": "Header type" },
        types.map(([v, label]) => h("option", { value: v, selected: v === type }, label))),
      h("button", { type: "button", class: "secondary small", title: "Remove this header",
        onclick: () => { row.remove(); if (!rows.children.length) addRow(); } }, "\u00d7"));
    rows.append(row);
    return row;
  }

  function value() {
    const headers = {};
    for (const row of rows.querySelectorAll(".row")) {
      const name = row.querySelector(".header-name").value.trim();
      const raw = row.querySelector(".header-value").value;
      const type = row.querySelector(".header-type").value;
      if (!name) {
        if (raw.trim()) throw new Error("A header value has no name.");
        continue;
      }
      if (type === "number") {
        const number = Number(raw);
        if (raw.trim() === "" || Number.isNaN(number)) throw new Error(`Header '${name}': '${raw}' is not a number.`);
        headers[name] = number;
      } else if (type === "boolean") {
        const text = raw.trim().toLowerCase();
        if (text !== "true" && text !== "false") throw new Error(`Header '${name}': write true or false.`);
        headers[name] = text === "true";
      } else if (type === "json") {
        try {
          headers[name] = JSON.parse(raw);
        } catch {
          throw new Error(`Header '${name}': not JSON (e.g. ["a","b"] or {"k":1}).`);
        }
      } else {
        headers[name] = raw;
      }
    }
    return headers;
  }

  function set(headers) {
    rows.replaceChildren();
    for (const [name, v] of Object.entries(headers || {})) {
      const type = typeof v === "number" ? "number" : typeof v === "boolean" ? "boolean"
        : typeof v === "string" ? "string" : "json";
      addRow(name, type === "json" ? JSON.stringify(v) : String(v), type);
    }
    if (!rows.children.length) addRow();
  }

  addRow();
  const element = h("div", {},
    h("div", { class: "muted" }, "Headers"),
    rows,
    h("button", { type: "button", class: "secondary small", id: `${idPrefix}-add-header`, onclick: () => addRow() },
      "+ header"));
  return { element, value, set };
}

/** Form field values by name. */
export function formValues(form) {
  return Object.fromEntries(new FormData(form).entries());
}
