// Accounts and roles (admins).

import { api } from "../api.js";
import { h, notice, replace } from "../dom.js";

const ROLES = ["student", "teacher", "manager", "registrar", "admin"];

// Admins only: pages.json says so, and the router shows others a note instead.
export async function users(main) {
  const box = h("div");
  const table = h("div", { class: "table-wrap" });
  async function change(u, patch) {
    try {
      await api("PATCH", `/api/users/${u.id}`, patch);
      replace(box, notice(`${u.username} updated.`, "good"));
    } catch (error) {
      replace(box, notice(error.message, "bad"));
    }
    await load();
  }
  async function load(q = "") {
    const page = await api("GET", `/api/users?limit=200${q ? `&q=${encodeURIComponent(q)}` : ""}`);
    replace(table, h("table", {},
      h("thead", {}, h("tr", {}, h("th", {}, "Username"), h("th", {}, "Email"), h("th", {}, "Role"), h("th", {}, "Active"))),
      h("tbody", {}, page.items.map((u) => h("tr", {},
        h("td", {}, u.username), h("td", {}, u.email),
        h("td", {}, h("select", { "aria-label": `Role of ${u.username}`, onchange: (e) => change(u, { role: e.target.value }) },
          ROLES.map((r) => h("option", { value: r, selected: r === u.role }, r)))),
        h("td", {}, h("input", {
          type: "checkbox", checked: u.is_active, "aria-label": `${u.username} is active`,
          onchange: (e) => change(u, { is_active: e.target.checked }),
        })))))));
  }
  const search = h("form", { class: "row", role: "search" },
    h("label", {}, "Search", h("input", { name: "q", type: "search" })),
    h("button", { type: "submit", class: "secondary" }, "Search"));
  search.addEventListener("submit", (e) => { e.preventDefault(); load(search.elements.q.value.trim()); });
  replace(main, h("h1", {}, "Users"), search, box, table);
  await load();
}
