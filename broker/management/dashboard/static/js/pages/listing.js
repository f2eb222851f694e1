// A list page: a filter, a pager and a sortable table, fetched a page at a time.
//
// The API does the work RabbitMQ's does for its own dashboard: `page`,
// `page_size`, `name` (+ `use_regex`), `sort`, `sort_reverse` and `columns`,
// so a poll of a broker with thousands of queues carries one page of the
// fields shown, not every field of every queue. With `clientSide`, the whole
// list is fetched and paged here (for endpoints without pagination).

import { ApiError, get } from "../api.js";
import { clear, dig, h, table } from "../dom.js";

const PAGE_SIZES = [20, 50, 100, 500];

function loadSettings(key, defaults) {
  try {
    return { ...defaults, ...JSON.parse(sessionStorage.getItem(`warren.list.${key}`) || "{}") };
  } catch {
    return { ...defaults };
  }
}

/**
 * options: key (settings and element ids), title, endpoint(vhost) -> path,
 * columns (for dom.table), fields (the API's `columns`), sort (default field),
 * empty, clientSide, nameField (for client-side filtering).
 */
export function listPage(ctx, options) {
  const settings = loadSettings(options.key, {
    page: 1, pageSize: 50, name: "", regex: false, sort: options.sort || "", reverse: false,
  });
  const save = () => sessionStorage.setItem(`warren.list.${options.key}`, JSON.stringify(settings));

  const count = h("span", { class: "muted", id: `${options.key}-count` });
  const nameInput = h("input", {
    type: "search", name: "name", id: `${options.key}-filter`, placeholder: "name contains\u2026",
    value: settings.name, "aria-label": "Filter by name",
  });
  const regex = h("input", { type: "checkbox", id: `${options.key}-regex`, checked: settings.regex });
  const sizeSelect = h("select", { id: `${options.key}-page-size`, "aria-label": "Rows per page" },
    PAGE_SIZES.map((n) => h("option", { value: n, selected: n === settings.pageSize }, `${n} per page`)));
  const pageInfo = h("span", { class: "muted", id: `${options.key}-page` });
  const prev = h("button", { type: "button", class: "secondary small", id: `${options.key}-prev` }, "\u2039 Previous");
  const next = h("button", { type: "button", class: "secondary small", id: `${options.key}-next` }, "Next \u203a");
  const holder = h("div", { id: `${options.key}-table` });

  let last = null; // the last answer, for re-rendering without a fetch (sorting clicks)
  let timer = null;

  const refetch = () => {
    controller.refresh().catch((error) => ctx.showError(error instanceof ApiError ? error.describe() : String(error)));
  };
  nameInput.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      settings.name = nameInput.value;
      settings.page = 1;
      save();
      refetch();
    }, 300);
  });
  regex.addEventListener("change", () => {
    settings.regex = regex.checked;
    settings.page = 1;
    save();
    refetch();
  });
  sizeSelect.addEventListener("change", () => {
    settings.pageSize = Number(sizeSelect.value);
    settings.page = 1;
    save();
    refetch();
  });
  prev.addEventListener("click", () => {
    settings.page = Math.max(1, settings.page - 1);
    save();
    refetch();
  });
  next.addEventListener("click", () => {
    settings.page += 1;
    save();
    refetch();
  });

  function onSort(field) {
    if (settings.sort === field) settings.reverse = !settings.reverse;
    else {
      settings.sort = field;
      settings.reverse = false;
    }
    save();
    refetch();
  }

  ctx.root.append(
    h("h1", {}, options.title, " ", count),
    h("form", { class: "inline", onsubmit: (e) => e.preventDefault() },
      h("label", {}, "Filter", nameInput),
      h("label", { class: "check", title: "The filter is a regular expression (case-insensitive)" }, regex, "regex"),
      sizeSelect),
    h("div", { class: "pager" }, prev, pageInfo, next),
    holder,
  );

  function render(answer) {
    last = answer;
    const { items, page, pageCount, filtered, total } = answer;
    count.textContent = filtered === total ? `(${total})` : `(${filtered} of ${total} match)`;
    pageInfo.textContent = pageCount > 1 ? `page ${page} of ${pageCount}` : "";
    prev.disabled = page <= 1;
    next.disabled = page >= pageCount;
    prev.hidden = next.hidden = pageCount <= 1;
    clear(holder).append(table({
      id: options.key,
      columns: options.columns.filter((c) => !c.allVhostsOnly || !ctx.vhost),
      rows: items,
      empty: settings.name ? "Nothing matches the filter." : options.empty,
      sort: { field: settings.sort, reverse: settings.reverse },
      onSort,
      rowId: options.rowId,
    }));
  }

  async function fetchServerSide() {
    const params = new URLSearchParams({
      page: String(settings.page),
      page_size: String(settings.pageSize),
    });
    if (settings.name) params.set("name", settings.name);
    if (settings.name && settings.regex) params.set("use_regex", "true");
    if (settings.sort) params.set("sort", settings.sort);
    if (settings.reverse) params.set("sort_reverse", "true");
    if (options.fields) params.set("columns", options.fields.join(","));
    let answer;
    try {
      answer = await get(`${options.endpoint(ctx.vhost)}?${params}`);
    } catch (error) {
      if (error instanceof ApiError && error.status === 400 && settings.page !== 1) {
        settings.page = 1; // the list shrank under us: back to the first page
        save();
        return fetchServerSide();
      }
      throw error;
    }
    if (answer.page_count && settings.page > answer.page_count) {
      settings.page = answer.page_count;
      save();
      return fetchServerSide();
    }
    return {
      items: answer.items, page: answer.page, pageCount: answer.page_count,
      filtered: answer.filtered_count, total: answer.total_count,
    };
  }

  async function fetchClientSide() {
    const all = await get(options.endpoint(ctx.vhost));
    let items = all;
    if (settings.name) {
      let test;
      if (settings.regex) {
        let pattern;
        try {
          pattern = new RegExp(settings.name, "i");
        } catch {
          pattern = /$^/;
        }
        test = (text) => pattern.test(text);
      } else {
        const needle = settings.name.toLowerCase();
        test = (text) => text.toLowerCase().includes(needle);
      }
      items = items.filter((item) => test(String(dig(item, options.nameField) ?? "")));
    }
    if (settings.sort) {
      const key = (item) => dig(item, settings.sort) ?? 0;
      items = [...items].sort((a, b) => {
        const x = key(a);
        const y = key(b);
        if (typeof x === "number" && typeof y === "number") return x - y;
        return String(x).localeCompare(String(y));
      });
      if (settings.reverse) items.reverse();
    }
    const pageCount = Math.ceil(items.length / settings.pageSize);
    if (pageCount && settings.page > pageCount) settings.page = pageCount;
    const start = (settings.page - 1) * settings.pageSize;
    return {
      items: items.slice(start, start + settings.pageSize), page: settings.page, pageCount,
      filtered: items.length, total: all.length,
    };
  }

  const controller = {
    async refresh() {
      const answer = options.clientSide ? await fetchClientSide() : await fetchServerSide();
      if (ctx.current) render(answer);
    },
    rerender() {
      if (last) render(last);
    },
    dispose() {
      clearTimeout(timer);
    },
  };
  return controller;
}

/** A link to a page of the dashboard, built from raw segments. */
export function pageLink(text, ...segments) {
  return h("a", { href: `#/${segments.map(encodeURIComponent).join("/")}` }, text);
}

/** The rate in `item` at a dotted path ending in `_details.rate`, or undefined. */
export function rate(item, dotted) {
  return dig(item, dotted);
}
