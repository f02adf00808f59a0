// The one door to the server: JSON in and out, the CSRF token on every write, a 401
// sends the browser to the sign-in page, and every error surfaces as an ApiError that
// carries the server's own message ({"error", "where"}, docs in web-api.md).

export const session = { user: null, role: null, csrf: null };

export class ApiError extends Error {
  constructor(status, message, where = null, body = null) {
    super(message);
    this.status = status;
    this.where = where;
    this.body = body;
  }
}

let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && method !== "HEAD" && session.csrf) {
    headers["X-CSRF-Token"] = session.csrf;
  }
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new ApiError(0, `${method} ${path}: the server did not answer (${err.message})`);
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    if (res.status === 401 && path !== "/api/signin" && path !== "/api/me") onUnauthorized();
    const msg =
      data && typeof data.error === "string"
        ? data.error
        : `${method} ${path}: HTTP ${res.status} ${res.statusText || ""}`.trim();
    throw new ApiError(res.status, msg, data ? data.where || null : null, data);
  }
  if (data === null && text) {
    throw new ApiError(res.status, `${method} ${path}: the answer is not JSON`);
  }
  return data;
}

export const get = (path) => api("GET", path);
export const post = (path, body = {}) => api("POST", path, body);

// Query string from an object, leaving out empty values.
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "" && v !== "all") q.set(k, v);
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

let configPromise = null;
export function config() {
  if (!configPromise) {
    configPromise = get("/api/config").catch((err) => {
      configPromise = null;
      throw err;
    });
  }
  return configPromise;
}

// Poll a job every 500 ms until it is done; onTick(job) after every answer. The signal
// (an AbortSignal) stops it when the page is left.
export async function pollJob(id, onTick, signal) {
  for (;;) {
    if (signal && signal.aborted) throw new ApiError(0, "left the page");
    const job = await get(`/api/jobs/${encodeURIComponent(id)}`);
    onTick(job);
    if (job.done) return job;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}
