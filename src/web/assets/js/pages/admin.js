// Accounts (admins; registrars for students and teachers): the list, new
// accounts with their invitations, edits, deactivation.

import { api, download, session } from "../api.js";
import { field, h, notice, replace, values, when } from "../dom.js";
import { explain, t } from "../i18n.js";
import { follow } from "../tasks.js";

const ROLES = ["student", "teacher", "manager", "registrar", "admin"];

/** The roles the signed-in user may give and manage: everything for admins, students and teachers for registrars. */
function manageable() {
  return session.get()?.user?.role === "admin" ? ROLES : ["student", "teacher"];
}

// Admins and registrars: pages.json says so, and the router shows others a note instead.
export async function users(main) {
  const roles = manageable();
  const box = h("div");
  const table = h("div", { class: "table-wrap" });
  let query = "";
  const say = (text, kind = "good") => replace(box, notice(text, kind));
  const failed = (error) => say(explain(error), "bad");

  async function change(u, patch, done) {
    try {
      await api("PATCH", `/api/users/${u.id}`, patch);
      say(done ?? t("users.updated", { name: u.display_name }));
    } catch (error) {
      failed(error);
    }
    await load();
  }

  async function resend(u) {
    try {
      await api("POST", `/api/users/${u.id}/invitation`);
      say(t("users.invitation_resent", { email: u.email }));
    } catch (error) {
      failed(error);
    }
  }

  const editor = h("form", { class: "stack card", hidden: true });
  function edit(u) {
    replace(editor, h("h2", {}, t("users.edit_named", { name: u.display_name })),
      field(t("field.display_name"), { name: "display_name", value: u.display_name, required: true, maxlength: 100 }),
      field(t("field.email"), { name: "email", type: "email", value: u.email, required: true }),
      field(t("field.number"), { name: "number", value: u.number ?? "" }),
      h("div", { class: "row" }, h("button", { type: "submit" }, t("school.save")),
        h("button", { type: "button", class: "secondary", onclick: () => { editor.hidden = true; } }, t("users.cancel"))));
    editor.onsubmit = async (event) => {
      event.preventDefault();
      editor.hidden = true;
      // An emptied number clears it (values() would leave it out).
      const { display_name: name, email, number } = editor.elements;
      await change(u, { display_name: name.value, email: email.value, number: number.value });
    };
    editor.hidden = false;
    editor.querySelector("input").focus();
  }

  function row(u) {
    const mine = roles.includes(u.role);
    return h("tr", {},
      h("td", {}, u.display_name), h("td", {}, u.username), h("td", {}, u.number ?? ""), h("td", {}, u.email),
      h("td", {}, mine
        ? h("select", { "aria-label": t("users.role_of", { name: u.display_name }), onchange: (e) => change(u, { role: e.target.value }) },
          roles.map((r) => h("option", { value: r, selected: r === u.role }, t(`role.${r}`))))
        : t(`role.${u.role}`)),
      h("td", {}, h("input", {
        type: "checkbox", checked: u.is_active, disabled: !mine, "aria-label": t("users.active_named", { name: u.display_name }),
        onchange: (e) => change(u, { is_active: e.target.checked }),
      })),
      h("td", {}, u.invitation_pending ? t("users.invitation_pending") : t("users.invitation_accepted")),
      h("td", { class: "row" },
        mine && h("button", { type: "button", class: "secondary", onclick: () => edit(u) }, t("school.edit")),
        mine && u.invitation_pending && u.is_active
          && h("button", { type: "button", class: "secondary", onclick: () => resend(u) }, t("users.resend"))));
  }

  async function load() {
    const page = await api("GET", `/api/users?limit=200${query ? `&q=${encodeURIComponent(query)}` : ""}`);
    replace(table, h("table", {},
      h("caption", { class: "muted" }, t("users.count", { count: page.total })),
      h("thead", {}, h("tr", {}, ["name", "username", "number", "email", "role", "active", "invitation", "actions"]
        .map((column) => h("th", {}, t(`users.column.${column}`))))),
      h("tbody", {}, page.items.map(row))));
  }

  const create = h("form", { class: "stack card" },
    h("h2", {}, t("users.new")),
    h("p", { class: "muted" }, t("users.new_hint")),
    field(t("field.display_name"), { name: "display_name", required: true, maxlength: 100 }),
    field(t("field.username"), { name: "username", required: true, autocomplete: "off" }),
    field(t("field.email"), { name: "email", type: "email", required: true }),
    field(t("users.number_optional"), { name: "number" }),
    h("label", {}, t("field.role"), h("select", { name: "role" }, roles.map((r) => h("option", { value: r }, t(`role.${r}`))))),
    h("button", { type: "submit" }, t("users.create")));
  create.addEventListener("submit", async (event) => {
    event.preventDefault();
    const account = values(create);
    try {
      const made = await api("POST", "/api/users", account);
      create.reset();
      say(t("users.created", { name: made.display_name, email: made.email }));
      await load();
    } catch (error) {
      failed(error);
    }
  });

  const roster = rosterCard(say, failed, load);

  const search = h("form", { class: "row", role: "search" },
    h("label", {}, t("users.search_hint"), h("input", { name: "q", type: "search" })),
    h("button", { type: "submit", class: "secondary" }, t("school.search")));
  search.addEventListener("submit", (e) => { e.preventDefault(); query = search.elements.q.value.trim(); load(); });
  replace(main, h("h1", {}, t("nav.users")), box, create, roster, editor, search, table);
  await load();
}

/** The roster as a CSV file: import (with a dry run first), export. */
function rosterCard(say, failed, reload) {
  const progress = h("p", { class: "muted", "aria-live": "polite" });
  const form = h("form", { class: "stack card" },
    h("h2", {}, t("roster.title")),
    h("p", { class: "muted" }, t("roster.hint")),
    h("label", {}, t("school.file"), h("input", { name: "file", type: "file", accept: ".csv,text/csv", required: true })),
    h("label", { class: "row" }, h("input", { name: "dry_run", type: "checkbox", checked: true }), t("roster.dry_run")),
    h("div", { class: "row" },
      h("button", { type: "submit" }, t("roster.import")),
      h("button", { type: "button", class: "secondary", onclick: exportRoster }, t("roster.export"))),
    progress);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const dryRun = form.elements.dry_run.checked;
    const body = new FormData();
    body.append("file", form.elements.file.files[0]);
    try {
      const { task_id } = await api("POST", `/api/imports/users${dryRun ? "?dry_run=true" : ""}`, undefined, { form: body });
      const task = await follow(task_id, (step) => replace(progress,
        t("roster.working", { done: step.progress.done, total: step.progress.total ?? "?" })));
      replace(progress, "");
      const { ok, failed: bad, error_report_url: report } = task.result;
      say(t(dryRun ? "roster.checked" : "roster.imported", { count: ok, failed: bad }), bad ? "bad" : "good");
      if (report) {
        progress.append(h("button", { type: "button", class: "secondary",
          onclick: () => download(report, "roster-errors.csv") }, t("roster.problems")));
      }
      if (!dryRun) await reload();
    } catch (error) {
      replace(progress, "");
      failed(error);
    }
  });
  async function exportRoster() {
    try {
      const { task_id } = await api("POST", "/api/exports/users");
      replace(progress, t("export.preparing"));
      const task = await follow(task_id);
      replace(progress, "");
      await download(task.result.download_url, "roster.csv");
      say(t("roster.exported", { count: task.result.count }));
    } catch (error) {
      replace(progress, "");
      failed(error);
    }
  }
  return form;
}

/** Mail that failed for good (admins): who, what, why, and re-sending it. */
export async function mail(main) {
  const box = h("div");
  const table = h("div", { class: "table-wrap" });
  const say = (text, kind = "good") => replace(box, notice(text, kind));

  async function resend(m) {
    try {
      await api("POST", `/api/mail/${m.id}/resend`);
      say(t("mail.resent", { email: m.recipient }));
    } catch (error) {
      say(explain(error), "bad");
    }
    await load();
  }

  async function load() {
    const page = await api("GET", "/api/mail?state=failed&limit=200");
    replace(table, page.items.length ? h("table", {},
      h("caption", { class: "muted" }, t("mail.count", { count: page.total })),
      h("thead", {}, h("tr", {}, ["recipient", "kind", "subject", "attempts", "error", "queued", "actions"]
        .map((column) => h("th", {}, t(`mail.column.${column}`))))),
      h("tbody", {}, page.items.map((m) => h("tr", {},
        h("td", {}, m.recipient), h("td", {}, t(`mail.kind.${m.kind}`)), h("td", {}, m.subject),
        h("td", {}, m.attempts), h("td", {}, m.last_error ?? ""), h("td", {}, when(m.created_at)),
        h("td", {}, h("button", { type: "button", class: "secondary", onclick: () => resend(m) }, t("mail.resend")))))))
      : h("p", { class: "muted", id: "mail-none" }, t("mail.none")));
  }

  replace(main, h("h1", {}, t("mail.title")), h("p", { class: "muted" }, t("mail.hint")), box, table);
  await load();
}
