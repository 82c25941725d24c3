// Accounts (admins; registrars for students and teachers): the list, new
// accounts with their invitations, edits, deactivation.

import { api, download, session } from "../api.js";
import { field, h, notice, replace, values } from "../dom.js";
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
  const failed = (error) => say([error.message, ...error.details()].join(" — "), "bad");

  async function change(u, patch, done) {
    try {
      await api("PATCH", `/api/users/${u.id}`, patch);
      say(done ?? `${u.display_name} updated.`);
    } catch (error) {
      failed(error);
    }
    await load();
  }

  async function resend(u) {
    try {
      await api("POST", `/api/users/${u.id}/invitation`);
      say(`A new invitation is on its way to ${u.email}.`);
    } catch (error) {
      failed(error);
    }
  }

  const editor = h("form", { class: "stack card", hidden: true });
  function edit(u) {
    replace(editor, h("h2", {}, `Edit ${u.display_name}`),
      field("Name", { name: "display_name", value: u.display_name, required: true, maxlength: 100 }),
      field("Email", { name: "email", type: "email", value: u.email, required: true }),
      field("School number", { name: "number", value: u.number ?? "" }),
      h("div", { class: "row" }, h("button", { type: "submit" }, "Save"),
        h("button", { type: "button", class: "secondary", onclick: () => { editor.hidden = true; } }, "Cancel")));
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
        ? h("select", { "aria-label": `Role of ${u.display_name}`, onchange: (e) => change(u, { role: e.target.value }) },
          roles.map((r) => h("option", { value: r, selected: r === u.role }, r)))
        : u.role),
      h("td", {}, h("input", {
        type: "checkbox", checked: u.is_active, disabled: !mine, "aria-label": `${u.display_name} is active`,
        onchange: (e) => change(u, { is_active: e.target.checked }),
      })),
      h("td", {}, u.invitation_pending ? "not accepted yet" : "accepted"),
      h("td", { class: "row" },
        mine && h("button", { type: "button", class: "secondary", onclick: () => edit(u) }, "Edit"),
        mine && u.invitation_pending && u.is_active
          && h("button", { type: "button", class: "secondary", onclick: () => resend(u) }, "Re-send invitation")));
  }

  async function load() {
    const page = await api("GET", `/api/users?limit=200${query ? `&q=${encodeURIComponent(query)}` : ""}`);
    replace(table, h("table", {},
      h("caption", { class: "muted" }, `${page.total} accounts`),
      h("thead", {}, h("tr", {}, ["Name", "Username", "Number", "Email", "Role", "Active", "Invitation", ""]
        .map((title) => h("th", {}, title)))),
      h("tbody", {}, page.items.map(row))));
  }

  const create = h("form", { class: "stack card" },
    h("h2", {}, "New account"),
    h("p", { class: "muted" }, "The owner gets a mail with a link to choose their password."),
    field("Name", { name: "display_name", required: true, maxlength: 100 }),
    field("Username", { name: "username", required: true, autocomplete: "off" }),
    field("Email", { name: "email", type: "email", required: true }),
    field("School number (optional)", { name: "number" }),
    h("label", {}, "Role", h("select", { name: "role" }, roles.map((r) => h("option", { value: r }, r)))),
    h("button", { type: "submit" }, "Create and invite"));
  create.addEventListener("submit", async (event) => {
    event.preventDefault();
    const account = values(create);
    try {
      const made = await api("POST", "/api/users", account);
      create.reset();
      say(`Account made for ${made.display_name}; the invitation is on its way to ${made.email}.`);
      await load();
    } catch (error) {
      failed(error);
    }
  });

  const roster = rosterCard(say, failed, load);

  const search = h("form", { class: "row", role: "search" },
    h("label", {}, "Search by name, username, number or email", h("input", { name: "q", type: "search" })),
    h("button", { type: "submit", class: "secondary" }, "Search"));
  search.addEventListener("submit", (e) => { e.preventDefault(); query = search.elements.q.value.trim(); load(); });
  replace(main, h("h1", {}, "Users"), box, create, roster, editor, search, table);
  await load();
}

/** The roster as a CSV file: import (with a dry run first), export. */
function rosterCard(say, failed, reload) {
  const progress = h("p", { class: "muted", "aria-live": "polite" });
  const form = h("form", { class: "stack card" },
    h("h2", {}, "Roster"),
    h("p", { class: "muted" },
      "A CSV file with the columns username, display_name, email, role and number. ",
      "New people are mailed an invitation; existing ones are updated."),
    h("label", {}, "File", h("input", { name: "file", type: "file", accept: ".csv,text/csv", required: true })),
    h("label", { class: "row" }, h("input", { name: "dry_run", type: "checkbox", checked: true }),
      "Check only: report what would change, change nothing"),
    h("div", { class: "row" },
      h("button", { type: "submit" }, "Import"),
      h("button", { type: "button", class: "secondary", onclick: exportRoster }, "Export the roster")),
    progress);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const dryRun = form.elements.dry_run.checked;
    const body = new FormData();
    body.append("file", form.elements.file.files[0]);
    try {
      const { task_id } = await api("POST", `/api/imports/users${dryRun ? "?dry_run=true" : ""}`, undefined, { form: body });
      const task = await follow(task_id, (t) => replace(progress, `Working… ${t.progress.done} of ${t.progress.total ?? "?"} rows`));
      replace(progress, "");
      const { ok, failed: bad, error_report_url: report } = task.result;
      const verb = dryRun ? "would be imported" : "imported";
      say(`${ok} rows ${verb}, ${bad} with problems.`, bad ? "bad" : "good");
      if (report) {
        progress.append(h("button", { type: "button", class: "secondary",
          onclick: () => download(report, "roster-errors.csv") }, "Download the problems (CSV)"));
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
      replace(progress, "Preparing the file…");
      const task = await follow(task_id);
      replace(progress, "");
      await download(task.result.download_url, "roster.csv");
      say(`Exported ${task.result.count} people.`);
    } catch (error) {
      replace(progress, "");
      failed(error);
    }
  }
  return form;
}
