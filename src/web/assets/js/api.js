// The JSON API, with the session's tokens. Tokens live in sessionStorage
// (this tab), never in a URL; an expired access token is refreshed once.

const KEY = "classbell.session";

export const session = {
  get() {
    try { return JSON.parse(sessionStorage.getItem(KEY)) ?? null; } catch { return null; }
  },
  set(tokens) {
    sessionStorage.setItem(KEY, JSON.stringify({
      access: tokens.access_token, refresh: tokens.refresh_token, user: tokens.user,
    }));
  },
  update(patch) {
    const current = this.get();
    if (current) sessionStorage.setItem(KEY, JSON.stringify({ ...current, ...patch }));
  },
  clear() { sessionStorage.removeItem(KEY); },
};

/** An error answer: `code`, and `fields` of coded reasons (`explain` in i18n.js says them). */
export class ApiError extends Error {
  constructor(status, body, headers) {
    super(body?.error?.message ?? String(status));
    this.status = status;
    this.code = body?.error?.code;
    this.fields = body?.error?.fields ?? {};
    this.headers = headers;
  }
}

let refreshing = null;

async function refresh() {
  const current = session.get();
  if (!current?.refresh) return false;
  refreshing ??= fetch("/auth/refresh", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ refresh_token: current.refresh }),
  }).then(async (response) => {
    if (!response.ok) return false;
    session.set(await response.json());
    return true;
  }).finally(() => { refreshing = null; });
  return refreshing;
}

/** `api("POST", "/api/x", body)` → parsed JSON (or null); throws ApiError. */
export async function api(method, path, body, { form, raw } = {}) {
  for (let attempt = 0; ; attempt++) {
    const headers = {};
    const token = session.get()?.access;
    if (token) headers.authorization = `Bearer ${token}`;
    let payload;
    if (form) payload = form;
    else if (body !== undefined) {
      headers["content-type"] = "application/json";
      payload = JSON.stringify(body);
    }
    const response = await fetch(path, { method, headers, body: payload });
    if (response.status === 401 && token && attempt === 0 && (await refresh())) continue;
    if (raw && response.ok) return response;
    if (response.status === 204) return null;
    const text = await response.text();
    const data = text ? JSON.parse(text) : null;
    if (!response.ok) {
      if (response.status === 401 && token) {
        session.clear();
        window.dispatchEvent(new CustomEvent("signed-out"));
      }
      throw new ApiError(response.status, data, response.headers);
    }
    return data;
  }
}

/** Downloads `path` with the session's token and offers it as `filename`. */
export async function download(path, filename) {
  const response = await api("GET", path, undefined, { raw: true });
  const blob = await response.blob();
  const disposition = response.headers.get("content-disposition") ?? "";
  const named = new RegExp('filename="?([^";]+)"?').exec(disposition)?.[1] ?? filename;
  const url = URL.createObjectURL(blob);
  const link = Object.assign(document.createElement("a"), { href: url, download: named });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

let config = null;

/** The school's settings (`GET /api/config`: time zone, languages, registration), asked once. */
export function schoolConfig() {
  config ??= api("GET", "/api/config").catch(() => ({
    timezone: "UTC", default_locale: "en", locales: ["en", "zh-CN"], registration: { mode: "open" },
  }));
  return config;
}

/** Who may register (`{mode: "open" | "closed" | "domains", domains?}`). */
export async function registration() {
  return (await schoolConfig()).registration;
}
