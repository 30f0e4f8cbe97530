// The gateway's API as the console calls it. The bearer token comes from
// the Token field and is kept in this browser's localStorage; it travels
// only in the Authorization header, never in a URL.
"use strict";

export class ApiError extends Error {
  constructor(status, title, detail) {
    super(detail || title || `HTTP ${status}`);
    this.status = status;
    this.title = title;
  }
}

const authListeners = [];

/// `listener(error)` is called on every 401 or 403 answer.
export function onAuthProblem(listener) {
  authListeners.push(listener);
}

export function setToken(token) {
  localStorage.setItem("matview.token", token);
}

export function storedToken() {
  return localStorage.getItem("matview.token") || "";
}

function headers(extra = {}) {
  const token = storedToken();
  return token ? { ...extra, Authorization: "Bearer " + token } : { ...extra };
}

async function problemOf(response, quiet = false) {
  const body = await response.json().catch(() => ({}));
  const error = new ApiError(response.status, body.title || response.statusText, body.detail);
  if (!quiet && (response.status === 401 || response.status === 403)) authListeners.forEach((l) => l(error));
  return error;
}

/// `quiet`: a 401 or 403 is the caller's to explain (a panel that needs
/// more than reading), not the page's.
export async function api(path, { quiet = false, ...options } = {}) {
  const response = await fetch(path, { ...options, headers: headers(options.headers) });
  if (!response.ok) throw await problemOf(response, quiet);
  return response.json();
}

export function viewPath(view) {
  return `/v1/namespaces/${encodeURIComponent(view.namespace)}/views/${encodeURIComponent(view.name)}`;
}

// Server-sent events over fetch, because EventSource cannot send a bearer
// token. The format is a few lines (blank-line separated blocks of
// `field: value`); reconnects resume with Last-Event-ID.
export async function follow(path, { signal, onEvent, onState }) {
  let lastId = null;
  while (!signal.aborted) {
    try {
      const extra = lastId ? { "Last-Event-ID": lastId } : {};
      const response = await fetch(path, { headers: headers(extra), signal });
      if (!response.ok) throw await problemOf(response);
      onState("live");
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = { type: "message", data: "" };
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) event.type = line.slice(6).trim();
            else if (line.startsWith("id:")) lastId = line.slice(3).trim();
            else if (line.startsWith("data:")) event.data += line.slice(5).trim();
          }
          if (!block.startsWith(":")) onEvent(event);
        }
      }
    } catch (e) {
      if (signal.aborted) return;
      onState("reconnecting: " + e.message);
      await new Promise((r) => setTimeout(r, e.status === 401 || e.status === 403 ? 5000 : 1000));
    }
  }
}

/// An element with text (never HTML: event payloads and keys are data).
export function text(tag, value, cls) {
  const el = document.createElement(tag);
  el.textContent = value;
  if (cls) el.className = cls;
  return el;
}

export function table(headings, rows) {
  const t = document.createElement("table");
  const head = document.createElement("tr");
  head.append(...headings.map((h) => { const th = text("th", h); th.scope = "col"; return th; }));
  const thead = document.createElement("thead");
  thead.append(head);
  const body = document.createElement("tbody");
  body.append(...rows.map((cells) => {
    const tr = document.createElement("tr");
    tr.append(...cells.map((c) => text("td", String(c))));
    return tr;
  }));
  t.append(thead, body);
  return t;
}
