// The HTTP contract, from the browser: JSON and problem details, bearer tokens with silent refresh,
// Server-Sent Events for the tutor. The base URL is the page's <meta name="aiteacher-api-base">
// (empty: the same origin, as `make dev` and the NGINX edge serve it).

const TOKENS_KEY = "aiteacher.tokens";

export class ApiError extends Error {
  constructor(status, problem, retryAfter) {
    super(problem?.detail || problem?.title || `The server answered ${status}.`);
    this.status = status;
    this.problem = problem || {};
    this.code = this.problem.code || "";
    this.retryAfter = retryAfter;
  }
}

// What a person should read for an error: the problem's detail, plus what to do about it.
export function describeError(error) {
  if (!(error instanceof ApiError)) return "The server could not be reached. Check your connection and try again.";
  if (error.status === 429) {
    const wait = error.retryAfter ? ` Try again in ${error.retryAfter} s.` : " Try again shortly.";
    return `${error.message}${wait}`;
  }
  if (error.status === 503) return `${error.message} The service is temporarily unavailable; try again shortly.`;
  if (error.status === 422 && Array.isArray(error.problem.errors) && error.problem.errors.length) {
    const first = error.problem.errors[0];
    const where = Array.isArray(first.loc) ? first.loc.filter((p) => p !== "body").join(".") : "";
    return where ? `${error.message} (${where}: ${first.msg})` : error.message;
  }
  return error.message;
}

async function toError(response) {
  let problem = null;
  try {
    problem = await response.json();
  } catch {
    problem = { title: response.statusText };
  }
  return new ApiError(response.status, problem, response.headers.get("Retry-After"));
}

class Api {
  constructor() {
    const meta = document.querySelector('meta[name="aiteacher-api-base"]');
    this.base = (meta?.content || "").replace(/\/$/, "");
    this.tokens = JSON.parse(sessionStorage.getItem(TOKENS_KEY) || "null");
    this.onSignedOut = () => {};
    this.refreshing = null;
  }

  get signedIn() {
    return Boolean(this.tokens?.access_token);
  }

  save(tokens) {
    this.tokens = tokens;
    if (tokens) sessionStorage.setItem(TOKENS_KEY, JSON.stringify(tokens));
    else sessionStorage.removeItem(TOKENS_KEY);
  }

  url(path, query) {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query || {})) {
      if (value !== undefined && value !== null && value !== "") params.set(key, value);
    }
    const qs = params.toString();
    return `${this.base}${path}${qs ? `?${qs}` : ""}`;
  }

  async fetch(method, path, { json, form, query, accept, auth = true } = {}, retried = false) {
    const headers = { Accept: accept || "application/json" };
    let body;
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    } else if (form) {
      body = form;
    }
    if (auth && this.tokens) headers.Authorization = `Bearer ${this.tokens.access_token}`;
    const response = await fetch(this.url(path, query), { method, headers, body });
    if (response.status === 401 && auth && this.tokens && !retried) {
      if (await this.refresh()) return this.fetch(method, path, { json, form, query, accept, auth }, true);
      this.signOutLocally();
    }
    if (!response.ok) throw await toError(response);
    return response;
  }

  async request(method, path, options = {}) {
    const response = await this.fetch(method, path, options);
    if (response.status === 204) return null;
    const type = response.headers.get("Content-Type") || "";
    return type.includes("json") ? response.json() : response.text();
  }

  get(path, query) {
    return this.request("GET", path, { query });
  }

  post(path, json) {
    return this.request("POST", path, { json });
  }

  put(path, json) {
    return this.request("PUT", path, { json });
  }

  del(path) {
    return this.request("DELETE", path);
  }

  // One refresh at a time: concurrent 401s wait for the same rotation (a refresh token works once).
  refresh() {
    if (!this.tokens?.refresh_token) return Promise.resolve(false);
    if (!this.refreshing) {
      const refreshToken = this.tokens.refresh_token;
      this.refreshing = fetch(this.url("/auth/refresh"), {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ refresh_token: refreshToken }),
      })
        .then(async (response) => {
          if (!response.ok) return false;
          this.save(await response.json());
          return true;
        })
        .catch(() => false)
        .finally(() => {
          this.refreshing = null;
        });
    }
    return this.refreshing;
  }

  async login(email, password) {
    this.save(await this.request("POST", "/auth/login", { json: { email, password }, auth: false }));
  }

  register(body) {
    return this.request("POST", "/auth/register", { json: body, auth: false });
  }

  async logout() {
    const tokens = this.tokens;
    try {
      if (tokens) await this.request("POST", "/auth/logout", { json: { refresh_token: tokens.refresh_token } });
    } finally {
      this.signOutLocally();
    }
  }

  signOutLocally() {
    this.save(null);
    this.onSignedOut();
  }

  // POST with Accept: text/event-stream; calls onEvent(name, data) per event as it arrives.
  async stream(path, json, onEvent) {
    const response = await this.fetch("POST", path, { json, accept: "text/event-stream" });
    const type = response.headers.get("Content-Type") || "";
    if (!type.includes("text/event-stream")) {
      onEvent("done", await response.json());
      return;
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let name = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) name = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
        if (!data.length) continue;
        let parsed;
        try {
          parsed = JSON.parse(data.join("\n"));
        } catch {
          parsed = { text: data.join("\n") };
        }
        onEvent(name, parsed);
      }
    }
  }

  // A binary resource (page image, export) as an object URL the page can show or download.
  async blobUrl(path, query) {
    const response = await this.fetch("GET", path, { query, accept: "*/*" });
    return URL.createObjectURL(await response.blob());
  }
}

export const api = new Api();
