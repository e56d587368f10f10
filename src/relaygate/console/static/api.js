// The console API client: JSON in and out, the session cookie sent by the browser, the
// session's CSRF token in X-CSRF-Token on every state-changing call.
let csrfToken = "";

export function setCsrf(token) {
  csrfToken = token || "";
}

export class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `HTTP ${status}`);
    this.status = status;
    this.code = err.code || "";
    this.param = err.param || null;
  }
}

async function call(method, url, body) {
  const headers = { Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (method !== "GET" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  const response = await fetch(url, init);
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

// The admin API (docs/console.md, "Admin pages"): /console/api/admin/<path> is
// /admin/api/<path> for a signed-in admin. Answers are the admin API's own JSON, returned
// whole (most carry `data`; lists may carry `has_more`); the envelope's code/msg are dropped.
export async function adminApi(method, path, body) {
  const data = await call(method, `/console/api/admin${path}`, body);
  if (data && typeof data === "object") {
    delete data.code;
    delete data.msg;
  }
  return data;
}

// A URL under the admin bridge, for downloads (CSV exports) opened by the browser itself.
export function adminUrl(path) {
  return `/console/api/admin${path}`;
}

export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (method !== "GET" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  const response = await fetch(`/console/api${path}`, init);
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data ? data.data : null;
}

// The public price catalogue of the gateway (model names for filters and pickers).
export async function modelNames() {
  try {
    const response = await fetch("/v1/pricing", { headers: { Accept: "application/json" } });
    const body = await response.json();
    return (body.data || []).map((m) => m.model || m.id).filter(Boolean).sort();
  } catch {
    return [];
  }
}
