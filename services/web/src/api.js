// The gateway's HTTP API as the pages use it: the bearer token, errors in words, NDJSON streams.
// Same origin as the app, so no CORS and no address to configure.

const TOKEN_KEY = "exammentor.token";
const NAME_KEY = "exammentor.name";

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function userName() {
  return sessionStorage.getItem(NAME_KEY) || "";
}

export function signIn(accessToken, name) {
  sessionStorage.setItem(TOKEN_KEY, accessToken);
  sessionStorage.setItem(NAME_KEY, name);
}

/** Forgets everything this tab kept for the student (token, name, the autopilot run). */
export function signOut() {
  sessionStorage.clear();
}

/** An error answer of the gateway: its status, declared code, message and details. */
export class ApiError extends Error {
  constructor(status, detail) {
    super(detail.message || `HTTP ${status}`);
    this.status = status;
    this.code = detail.code || "";
    this.detail = detail;
  }
}

/** A sentence a student can act on, from a declared error code (or a failed connection). */
export function describeError(err) {
  if (err.name === "AbortError") return "Stopped.";
  if (err instanceof TypeError && /fetch|network/i.test(err.message)) {
    return "The server could not be reached. Check the connection and try again.";
  }
  if (!(err instanceof ApiError)) return `Something went wrong in this page: ${err.message}`;
  const d = err.detail;
  if (err.status === 401) return "Your session has ended or the name and password do not match. Please log in.";
  if (err.code === "name_taken") return "That name is taken. Choose another or log in.";
  if (err.code === "quiz_unavailable") {
    return "No quiz this time: the model gave no question that passed the checks, so nothing was stored. Try again or choose another topic.";
  }
  if (err.status === 409) return `Not now: ${d.message}`;
  if (err.status === 413) {
    const limit = d.limit ? ` The limit is ${formatBytes(d.limit)}.` : "";
    return `Too large: ${d.message}${limit}`;
  }
  if (err.status === 422) {
    const errors = Array.isArray(d.errors) ? d.errors : [];
    if (errors.length) return errors.map((e) => `${label(e.field)}: ${e.reason}`).join("; ");
    if (d.field) return `${label(d.field)}: ${d.message}`;
    return d.message;
  }
  if (err.status === 429 || err.status === 503) return `Busy: ${d.message} Try again in a moment.`;
  return d.message || `The server answered ${err.status}.`;
}

function label(field) {
  return String(field || "input").replaceAll("_", " ");
}

export function formatBytes(n) {
  if (n >= 1024 * 1024) return `${(n / 1024 / 1024).toFixed(0)} MB`;
  if (n >= 1024) return `${(n / 1024).toFixed(0)} kB`;
  return `${n} bytes`;
}

let onUnauthorized = () => {};

/** What the app does on any 401: forget the token and show the login page. */
export function setUnauthorizedHandler(handler) {
  onUnauthorized = handler;
}

async function send(method, path, { body, form, signal, accept } = {}) {
  const headers = {};
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  if (accept) headers.Accept = accept;
  let payload;
  if (form) payload = form;
  else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const reply = await fetch(path, { method, headers, body: payload, signal });
  if (!reply.ok) {
    let detail = {};
    try {
      const parsed = await reply.json();
      detail = typeof parsed.detail === "object" && parsed.detail ? parsed.detail : { message: String(parsed.detail || "") };
    } catch {
      detail = { message: reply.statusText };
    }
    const err = new ApiError(reply.status, detail);
    if (reply.status === 401 && t) onUnauthorized(err);
    throw err;
  }
  return reply;
}

/**
 * The answer's JSON; a 202 (the command outlived the gateway's wait) is followed through
 * `/api/requests/{id}/events` to its result, so a slow model is only slow, never an error.
 */
async function settle(reply, signal) {
  if (reply.status !== 202) return reply.json();
  const pending = await reply.json();
  return follow(pending.request_id, 0, signal);
}

/** The result of a stored request, following its progress from `after` until it ends. */
export async function follow(requestId, after = 0, signal) {
  for (;;) {
    let again = false;
    for await (const line of ndjson("GET", `/api/requests/${requestId}/events?after=${after}`, { signal })) {
      if (typeof line.seq === "number") after = line.seq;
      if (line.type === "complete") return line.final_result;
      if (line.type === "error" && line.code === "still_running") again = true;
      else if (line.type === "error") throw new ApiError(0, line);
    }
    // The gateway's wait ended before the command did: the command goes on, so follow on.
    if (!again) throw new ApiError(0, { message: "The request ended without a result." });
  }
}

export async function get(path, options = {}) {
  return settle(await send("GET", path, options), options.signal);
}

export async function post(path, body, options = {}) {
  return settle(await send("POST", path, { ...options, body }), options.signal);
}

export async function upload(path, form, options = {}) {
  return settle(await send("POST", path, { ...options, form }), options.signal);
}

/** Each JSON line of an NDJSON answer as it arrives; ``signal`` cancels the request. */
export async function* ndjson(method, path, { body, signal } = {}) {
  const reply = await send(method, path, { body, signal, accept: "application/x-ndjson" });
  const reader = reply.body.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += decoder.decode(value, { stream: true });
      let newline;
      while ((newline = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (line) yield JSON.parse(line);
      }
    }
    if (buffered.trim()) yield JSON.parse(buffered);
  } finally {
    reader.releaseLock();
  }
}
