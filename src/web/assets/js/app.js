// The app: routes addresses to pages, keeps the header (navigation, the bell
// and its unread badge) and one live connection for the signed-in user.

import { api, registration, schoolConfig, session } from "./api.js";
import { h, replace, useTimeZone } from "./dom.js";
import { LOCALES, chooseLocale, explain, locale, nameOf, rememberLocale, t } from "./i18n.js";
import { Live } from "./live.js";
import * as account from "./pages/account.js";
import * as inbox from "./pages/inbox.js";
import * as announcements from "./pages/announcements.js";
import * as school from "./pages/school.js";
import * as admin from "./pages/admin.js";
// The app's pages, each `{path, module, view, signed_in, roles?}`; the server
// reads the same list to answer each path with this app.
import pages from "./pages.json" with { type: "json" };

const STAFF = ["manager", "registrar", "admin"];
const modules = { account, inbox, announcements, school, admin };

const routes = pages.map(({ path, module, view, signed_in: signedIn, roles = [] }) => {
  const page = modules[module]?.[view];
  if (typeof page !== "function") throw new Error(`pages.json: ${path} names no view ${module}.${view}`);
  const names = [];
  const regex = new RegExp(`^${path.replace(/:(\w+)/g, (_, name) => (names.push(name), "([^/]+)"))}$`);
  return { path, page, signedIn, roles, regex, names };
});

const live = new Live();
const main = document.getElementById("main");
let leave = null;

function match(path) {
  for (const route of routes) {
    const found = route.regex.exec(path);
    if (found) return { ...route, params: Object.fromEntries(route.names.map((n, i) => [n, found[i + 1]])) };
  }
  return null;
}

/** Whether the page at `path` (as pages.json lists it) is for the signed-in user's role. */
function allowed(path, u = user()) {
  const roles = routes.find((route) => route.path === path)?.roles ?? [];
  return roles.length === 0 || roles.includes(u?.role);
}

export function go(path, { replace: swap = false } = {}) {
  history[swap ? "replaceState" : "pushState"]({}, "", path);
  render();
}

export function status(text) {
  replace(document.getElementById("status"), text ?? "");
}

function user() {
  return session.get()?.user ?? null;
}

function isStaff(u = user()) {
  return STAFF.includes(u?.role);
}

/** The page frame's words (index.html holds none of its own). */
function frame() {
  document.querySelector("a.skip").textContent = t("page.skip");
  document.getElementById("nav").setAttribute("aria-label", t("nav.label"));
  const unread = Number(document.getElementById("badge").textContent) || 0;
  document.getElementById("bell").setAttribute("aria-label", t("bell.unread", { count: unread }));
}

function navigation() {
  frame();
  const u = user();
  const link = (href, text) =>
    h("a", { href, "data-link": true, "aria-current": location.pathname === href ? "page" : undefined }, text);
  const nav = document.getElementById("nav");
  const bell = document.getElementById("bell");
  if (!u) {
    bell.hidden = true;
    replace(nav, link("/login", t("nav.sign_in")), languagePicker());
    // The register link shows only while the school lets people register.
    registration().then((policy) => {
      if (policy.mode !== "closed" && !user() && !nav.querySelector('a[href="/register"]')) {
        nav.insertBefore(link("/register", t("nav.register")), nav.lastChild);
      }
    });
    return;
  }
  bell.hidden = false;
  replace(
    nav,
    link("/inbox", t("nav.inbox")),
    allowed("/announcements", u) && link("/announcements", t("nav.announcements")),
    link("/courses", t("nav.courses")),
    link("/sections", t("nav.sections")),
    allowed("/admin/users", u) && link("/admin/users", t("nav.users")),
    allowed("/admin/mail", u) && link("/admin/mail", t("nav.mail")),
    link("/change-password", t("nav.password")),
    languagePicker(),
    h("button", { type: "button", onclick: signOut }, t("nav.sign_out", { name: u.display_name ?? u.username })),
  );
}

/** Switches the language at once; remembered in this browser and, signed in, on the account. */
function languagePicker() {
  const picker = h("select", { class: "language", "aria-label": t("language.label") },
    LOCALES.map((l) => h("option", { value: l, lang: l, selected: l === locale() }, nameOf(l))));
  picker.addEventListener("change", async () => {
    const chosen = picker.value;
    rememberLocale(chosen);
    if (user()) {
      try {
        const me = await api("PATCH", "/auth/me", { locale: chosen });
        session.update({ user: me });
      } catch { /* kept in this browser at least */ }
    }
    chooseLocale(chosen, schoolLocale);
    render();
  });
  return picker;
}

async function signOut() {
  try { await api("POST", "/auth/logout"); } catch { /* the session ends either way */ }
  session.clear();
  live.stop();
  go("/login");
}

function setBadge(unread) {
  const badge = document.getElementById("badge");
  badge.textContent = String(unread);
  badge.toggleAttribute("data-zero", unread === 0);
  document.getElementById("bell").setAttribute("aria-label", t("bell.unread", { count: unread }));
}

live.addEventListener("hello", (e) => setBadge(e.detail.unread_count));
live.addEventListener("unread_count", (e) => setBadge(e.detail.unread));
live.addEventListener("resync", (e) => setBadge(e.detail.unread_count));
live.addEventListener("connection", (e) => status(e.detail.connected ? "" : t("live.reconnecting")));
window.addEventListener("signed-out", () => { live.stop(); go("/login", { replace: true }); });

function notFound(main) {
  replace(main, h("h1", {}, t("page.not_found")), h("p", {}, h("a", { href: "/", "data-link": true }, t("page.home"))));
}

/** A page the user's role has no use for: said plainly, not as an error. */
function notForRole(roles) {
  return (main) => replace(main, h("h1", {}, t("page.not_available")),
    h("div", { id: "not-for-role", class: "notice", role: "status" },
      t("page.for_roles", { roles: new Intl.ListFormat(locale()).format(roles.map((r) => t(`role.${r}`))) })),
    h("p", {}, h("a", { href: "/", "data-link": true }, t("page.home"))));
}

async function render() {
  leave?.();
  leave = null;
  const found = match(location.pathname);
  navigation();
  if (found?.signedIn && !user()) return go("/login", { replace: true });
  if (user()) live.start();
  const ctx = { user: user(), live, go, status, isStaff: isStaff(), allowed, params: found?.params ?? {} };
  const page = !found ? notFound : allowed(found.path) ? found.page : notForRole(found.roles);
  // Each render draws into a view of its own: a page still loading when the
  // user moves on finishes into a view no longer shown, not over the next page.
  const view = h("div", { class: "view" });
  replace(main, view);
  try {
    const left = (await page(view, ctx)) ?? null;
    if (view.isConnected) leave = left;
    else left?.();
  } catch (error) {
    replace(view, h("div", { class: "notice bad", role: "alert" }, explain(error)));
  }
  if (view.isConnected) document.title = `${main.querySelector("h1")?.textContent ?? "classbell"} · classbell`;
}

document.addEventListener("click", (event) => {
  const link = event.target.closest("a[data-link]");
  if (!link || event.metaKey || event.ctrlKey || event.shiftKey || link.target) return;
  event.preventDefault();
  go(link.getAttribute("href"));
});
window.addEventListener("popstate", render);
window.addEventListener("classbell:signed-in", () => navigation());
// Times show on the school's clock and words in the reader's language: both
// are known before the first page draws.
let schoolLocale = "en";
schoolConfig().then((school) => {
  useTimeZone(school.timezone);
  schoolLocale = school.default_locale;
  chooseLocale(user()?.locale, schoolLocale);
}).finally(render);
window.addEventListener("classbell:signed-in", () => chooseLocale(user()?.locale, schoolLocale));
