// The app: routes addresses to pages, keeps the header (navigation, the bell
// and its unread badge) and one live connection for the signed-in user.

import { api, session } from "./api.js";
import { h, replace } from "./dom.js";
import { Live } from "./live.js";
import * as account from "./pages/account.js";
import * as inbox from "./pages/inbox.js";
import * as announcements from "./pages/announcements.js";
import * as school from "./pages/school.js";
import * as admin from "./pages/admin.js";

const STAFF = ["manager", "registrar", "admin"];

const routes = [
  ["/", account.home, true],
  ["/login", account.login, false],
  ["/register", account.register, false],
  ["/forgot-username", account.forgotUsername, false],
  ["/forgot-password", account.forgotPassword, false],
  ["/reset-password", account.resetPassword, false],
  ["/change-password", account.changePassword, true],
  ["/inbox", inbox.page, true],
  ["/announcements", announcements.mine, true],
  ["/announcements/new", announcements.compose, true],
  ["/courses", school.courses, true],
  ["/courses/:id", school.course, true],
  ["/sections", school.sections, true],
  ["/sections/:id", school.section, true],
  ["/admin/users", admin.users, true],
];

const live = new Live();
const main = document.getElementById("main");
let leave = null;

function match(path) {
  for (const [pattern, page, signedIn] of routes) {
    const names = [];
    const regex = new RegExp(`^${pattern.replace(/:(\w+)/g, (_, name) => (names.push(name), "([^/]+)"))}$`);
    const found = regex.exec(path);
    if (found) return { page, signedIn, params: Object.fromEntries(names.map((n, i) => [n, found[i + 1]])) };
  }
  return null;
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

function navigation() {
  const u = user();
  const link = (href, text) =>
    h("a", { href, "data-link": true, "aria-current": location.pathname === href ? "page" : undefined }, text);
  const nav = document.getElementById("nav");
  const bell = document.getElementById("bell");
  if (!u) {
    bell.hidden = true;
    return replace(nav, link("/login", "Sign in"), link("/register", "Register"));
  }
  bell.hidden = false;
  replace(
    nav,
    link("/inbox", "Inbox"),
    u.role !== "student" && link("/announcements", "Announcements"),
    link("/courses", "Courses"),
    link("/sections", "Sections"),
    u.role === "admin" && link("/admin/users", "Users"),
    link("/change-password", "Password"),
    h("button", { type: "button", onclick: signOut }, `Sign out (${u.username})`),
  );
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
  document.getElementById("bell").setAttribute("aria-label", `Inbox, ${unread} unread`);
}

live.addEventListener("hello", (e) => setBadge(e.detail.unread_count));
live.addEventListener("unread_count", (e) => setBadge(e.detail.unread));
live.addEventListener("connection", (e) => status(e.detail.connected ? "" : "Reconnecting to live updates…"));
window.addEventListener("signed-out", () => { live.stop(); go("/login", { replace: true }); });

async function render() {
  leave?.();
  leave = null;
  const found = match(location.pathname);
  navigation();
  if (!found) {
    replace(main, h("h1", {}, "Not found"), h("p", {}, h("a", { href: "/", "data-link": true }, "Home")));
    return;
  }
  if (found.signedIn && !user()) return go("/login", { replace: true });
  if (user()) live.start();
  const ctx = { user: user(), live, go, status, isStaff: isStaff(), params: found.params };
  replace(main);
  try {
    leave = (await found.page(main, ctx)) ?? null;
  } catch (error) {
    replace(main, h("div", { class: "notice bad", role: "alert" }, error.message));
  }
  document.title = `${main.querySelector("h1")?.textContent ?? "classbell"} · classbell`;
}

document.addEventListener("click", (event) => {
  const link = event.target.closest("a[data-link]");
  if (!link || event.metaKey || event.ctrlKey || event.shiftKey || link.target) return;
  event.preventDefault();
  go(link.getAttribute("href"));
});
window.addEventListener("popstate", render);
window.addEventListener("classbell:signed-in", () => navigation());
render();
