// The dashboard: log in, route between pages (#/queues, #/queues/%2F/name...),
// and poll the visible page's data.
//
// Polling is what a dashboard costs a busy broker, so it is kept small: only
// the page on screen fetches (one to three requests), every 5 s by default,
// never two polls at once (the next is scheduled when the last has answered),
// and not at all while the tab is hidden.

import {
  ApiError, PageError, currentUser, forget, get, hasCredentials, login, onUnauthorized,
} from "./api.js";
import { h, notice } from "./dom.js";
import admin from "./pages/admin.js";
import channels from "./pages/channels.js";
import connections from "./pages/connections.js";
import consumers from "./pages/consumers.js";
import definitions from "./pages/definitions.js";
import exchange from "./pages/exchange.js";
import exchanges from "./pages/exchanges.js";
import overview from "./pages/overview.js";
import queue from "./pages/queue.js";
import queues from "./pages/queues.js";
import trace from "./pages/trace.js";

const PAGES = {
  overview: { title: "Overview", list: overview },
  queues: { title: "Queues", list: queues, item: queue },
  exchanges: { title: "Exchanges", list: exchanges, item: exchange },
  connections: { title: "Connections", list: connections },
  channels: { title: "Channels", list: channels },
  consumers: { title: "Consumers", list: consumers },
  trace: { title: "Route tracer", list: trace },
  admin: { title: "Admin", list: admin },
  definitions: { title: "Definitions", list: definitions },
};

const DEFAULT_REFRESH = 5000;
const $ = (id) => document.getElementById(id);

const state = {
  controller: null, // the mounted page: {refresh?, dispose?}
  generation: 0, // bumped on every navigation: late answers for old pages are dropped
  timer: null,
  inflight: null, // the generation whose poll is waiting for answers
  vhosts: [],
  lastUpdate: null,
};

// -- settings kept in the browser ---------------------------------------------

function refreshInterval() {
  const stored = Number(localStorage.getItem("warren.refresh"));
  return Number.isFinite(stored) && (stored === 0 || stored >= 500) && localStorage.getItem("warren.refresh") !== null
    ? stored : DEFAULT_REFRESH;
}

function selectedVhost() {
  return sessionStorage.getItem("warren.vhost") || "";
}

// -- routing ----------------------------------------------------------------------

function parseHash() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [pathPart, queryPart = ""] = hash.split("?");
  const segments = pathPart.split("/").filter((s, i) => s !== "" || i > 0).map((s) => {
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  });
  const name = segments[0] || "overview";
  return { name, params: segments.slice(1), query: new URLSearchParams(queryPart) };
}

function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function route() {
  if (!hasCredentials()) return;
  const { name, params, query } = parseHash();
  const page = PAGES[name] || PAGES.overview;
  const module = params.length && page.item ? page.item : page.list;
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("active", link.dataset.page === name);
  }
  document.title = `${page.title} \u00b7 Warren`;
  mount(module, params, query);
}

function mount(module, params, query) {
  stopPolling();
  if (state.controller && state.controller.dispose) state.controller.dispose();
  state.generation += 1;
  const generation = state.generation;
  const root = $("page");
  root.replaceChildren();
  showError("");
  const ctx = {
    root,
    params,
    query,
    vhost: selectedVhost(),
    vhosts: state.vhosts,
    user: JSON.parse(currentUser() || "{}"),
    navigate,
    showError,
    /** True while this page is still the one on screen. */
    get current() {
      return generation === state.generation;
    },
  };
  state.controller = module(ctx) || {};
  state.lastUpdate = null;
  showStatus();
  poll(generation);
}

// -- polling ----------------------------------------------------------------------

function stopPolling() {
  clearTimeout(state.timer);
  state.timer = null;
}

async function poll(generation) {
  const controller = state.controller;
  if (!controller || !controller.refresh || generation !== state.generation) return;
  stopPolling();
  if (document.hidden || state.inflight === generation) return;
  state.inflight = generation;
  try {
    await controller.refresh();
    if (generation === state.generation) {
      showError("");
      state.lastUpdate = new Date();
    }
  } catch (error) {
    if (generation === state.generation) {
      showError(error instanceof ApiError ? error.describe() : error.message || String(error));
    }
    if (!(error instanceof ApiError || error instanceof PageError)) console.error(error); // a bug of ours
  } finally {
    if (state.inflight === generation) state.inflight = null;
  }
  if (generation !== state.generation) return;
  schedule();
}

function schedule() {
  stopPolling();
  const interval = refreshInterval();
  const controller = state.controller;
  if (controller && controller.refresh && interval > 0 && !document.hidden && hasCredentials()) {
    const generation = state.generation;
    state.timer = setTimeout(() => poll(generation), interval);
  }
  showStatus();
}

function showStatus() {
  const controller = state.controller;
  let text = "\u00a0";
  if (controller && controller.refresh) {
    const interval = refreshInterval();
    const when = state.lastUpdate ? `Updated ${state.lastUpdate.toLocaleTimeString()}` : "";
    if (document.hidden) text = `${when} \u00b7 paused while the tab is hidden`;
    else if (interval === 0) text = `${when} \u00b7 refresh paused`;
    else text = `${when} \u00b7 refreshing every ${interval / 1000} s`;
  }
  $("status").textContent = text.replace(/^ \u00b7 /, "");
}

document.addEventListener("visibilitychange", () => {
  if (document.hidden) {
    stopPolling();
    showStatus();
  } else {
    poll(state.generation);
  }
});

function showError(text) {
  notice($("page-error"), "error", text);
}

// -- vhosts and settings in the header -----------------------------------------

async function loadVhosts() {
  try {
    const vhosts = await get("/api/vhosts?columns=name");
    state.vhosts = vhosts.map((v) => v.name);
  } catch (error) {
    state.vhosts = [];
    if (!(error instanceof ApiError)) throw error;
  }
  const select = $("vhost-select");
  const chosen = selectedVhost();
  select.replaceChildren(
    h("option", { value: "" }, "All"),
    state.vhosts.map((name) => h("option", { value: name }, name)),
  );
  select.value = state.vhosts.includes(chosen) ? chosen : "";
  if (select.value !== chosen) sessionStorage.setItem("warren.vhost", select.value);
}

function setUpControls() {
  $("vhost-select").addEventListener("change", (event) => {
    sessionStorage.setItem("warren.vhost", event.target.value);
    route();
  });
  const refresh = $("refresh-select");
  const interval = String(refreshInterval());
  if (![...refresh.options].some((o) => o.value === interval)) {
    refresh.append(h("option", { value: interval }, `every ${Number(interval) / 1000} s`));
  }
  refresh.value = interval;
  refresh.addEventListener("change", (event) => {
    localStorage.setItem("warren.refresh", event.target.value);
    poll(state.generation);
  });
  $("logout").addEventListener("click", () => logOut(""));
}

// -- logging in and out ------------------------------------------------------------

function showLogin(message) {
  stopPolling();
  if (state.controller && state.controller.dispose) state.controller.dispose();
  state.controller = null;
  state.generation += 1;
  $("page").replaceChildren();
  $("shell").hidden = true;
  $("login").hidden = false;
  notice($("login-error"), "error", message);
  $("login-username").focus();
}

function logOut(message) {
  forget();
  showLogin(message);
}

async function showShell() {
  const who = JSON.parse(currentUser() || "{}");
  $("who").textContent = `${who.name || ""}${who.tags && who.tags.length ? ` (${who.tags.join(", ")})` : ""}`;
  $("login").hidden = true;
  $("shell").hidden = false;
  await loadVhosts();
  route();
}

function loginMessage(error) {
  if (!(error instanceof ApiError)) return String(error);
  if (error.status === 0) return `Cannot reach the broker: ${error.reason}`;
  if (error.loginFailed) return "Login failed: wrong username or password.";
  if (error.reason === "Not management user") {
    return "Login refused: this user has no management tag (administrator, monitoring, policymaker or management).";
  }
  return `Login refused: ${error.reason || error.status}`;
}

async function submitLogin(event) {
  event.preventDefault();
  const button = $("login-submit");
  button.disabled = true;
  try {
    await login($("login-username").value, $("login-password").value);
    $("login-password").value = "";
    notice($("login-error"), "error", "");
    await showShell();
  } catch (error) {
    forget();
    notice($("login-error"), "error", loginMessage(error));
  } finally {
    button.disabled = false;
  }
}

onUnauthorized(() => logOut("Your session ended: the broker no longer accepts these credentials. Log in again."));

async function start() {
  setUpControls();
  $("login-form").addEventListener("submit", submitLogin);
  window.addEventListener("hashchange", route);
  if (!hasCredentials()) {
    showLogin("");
    return;
  }
  try {
    await get("/api/whoami");
    await showShell();
  } catch (error) {
    if (!(error instanceof ApiError) || !error.loginFailed) {
      showLogin(loginMessage(error));
    }
  }
}

start();
