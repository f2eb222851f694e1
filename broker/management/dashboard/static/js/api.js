// The management API over fetch, with HTTP Basic credentials kept in sessionStorage.
//
// The credentials go in an Authorization header on every request, with the
// fetch credentials mode "omit": the browser then never shows its own
// password prompt for the API's 401 answers, and never caches them.

const AUTH_KEY = "warren.auth";
const USER_KEY = "warren.user";

/** An answer other than 2xx, or no answer at all (status 0). */
export class ApiError extends Error {
  constructor(status, error, reason, method, path) {
    const text = Array.isArray(reason) ? reason.join(" ") : String(reason ?? "");
    super(text || error || `HTTP ${status}`);
    this.status = status;
    this.error = error;
    this.reason = text;
    this.method = method;
    this.path = path;
  }

  /** The credentials themselves were refused (not a missing tag or permission). */
  get loginFailed() {
    return this.status === 401 && (this.error === "not_authorized" || !this.error);
  }

  /** A sentence for the page. */
  describe() {
    const where = this.path.split("?")[0];
    if (this.status === 0) return `Cannot reach the broker: ${this.reason}`;
    if (this.status === 401) return `Not allowed: ${this.reason || "Login failed"}`;
    if (this.status === 404 && this.error === "Object Not Found" && this.method === "GET") {
      return `Not found: ${where} (this broker may not serve it yet).`;
    }
    return `${this.method} ${where}: ${this.status} ${this.reason || this.error || ""}`.trim();
  }
}

/** A problem to show on the page, not a bug (e.g. "the queue does not exist"). */
export class PageError extends Error {
  get name() {
    return "PageError";
  }
}

function base64(text) {
  // RFC 7617: the user-id and password are UTF-8.
  let binary = "";
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary);
}

let unauthorizedHandler = null;

/** Called with the ApiError when the API stops accepting the stored credentials. */
export function onUnauthorized(handler) {
  unauthorizedHandler = handler;
}

export function currentUser() {
  return sessionStorage.getItem(USER_KEY);
}

export function hasCredentials() {
  return sessionStorage.getItem(AUTH_KEY) !== null;
}

export function forget() {
  sessionStorage.removeItem(AUTH_KEY);
  sessionStorage.removeItem(USER_KEY);
}

async function send(method, path, body, token) {
  const headers = { Accept: "application/json" };
  if (token !== null) headers.Authorization = `Basic ${token}`;
  const init = { method, headers, cache: "no-store", credentials: "omit" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw new ApiError(0, "network", error.message, method, path);
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!response.ok) {
    const error = data && typeof data === "object" ? data.error : undefined;
    const reason = data && typeof data === "object" ? data.reason : data;
    throw new ApiError(response.status, error, reason, method, path);
  }
  return data;
}

/** Check credentials with GET /api/whoami; keep them for the tab's session if good. */
export async function login(username, password) {
  const token = base64(`${username}:${password}`);
  const who = await send("GET", "/api/whoami", undefined, token);
  sessionStorage.setItem(AUTH_KEY, token);
  sessionStorage.setItem(USER_KEY, JSON.stringify(who));
  return who;
}

/** One request with the stored credentials; JSON in, JSON (or null) out. */
export async function api(method, path, body) {
  try {
    return await send(method, path, body, sessionStorage.getItem(AUTH_KEY));
  } catch (error) {
    if (error instanceof ApiError && error.loginFailed && unauthorizedHandler) {
      unauthorizedHandler(error);
    }
    throw error;
  }
}

export const get = (path) => api("GET", path);

/** A path with each interpolated value percent-encoded as one segment:
 *  path`/api/queues/${vhost}/${name}` gives /api/queues/%2F/a%2Fb for vhost "/" and queue "a/b". */
export function path(strings, ...values) {
  let out = strings[0];
  values.forEach((value, i) => {
    out += encodeURIComponent(value) + strings[i + 1];
  });
  return out;
}

/** A query string from an object, skipping undefined, null and "" values. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}
