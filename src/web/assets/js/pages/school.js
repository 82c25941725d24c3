// The catalogue: courses (with their files) and sections (with their
// students). Buttons appear only for what the user's role may do.

import { api, download } from "../api.js";
import { field, h, notice, replace, values, when } from "../dom.js";
import { explain, t } from "../i18n.js";

function failure(box, error) {
  replace(box, notice(explain(error), "bad"));
}

function searchForm(placeholder, onSearch) {
  const form = h("form", { class: "row", role: "search" },
    h("label", {}, t("school.search"), h("input", { name: "q", type: "search", placeholder })),
    h("button", { type: "submit", class: "secondary" }, t("school.search")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    onSearch(form.elements.q.value.trim());
  });
  return form;
}

export async function courses(main, { isStaff }) {
  const box = h("div");
  const table = h("div", { class: "table-wrap" });
  async function load(q = "") {
    const page = await api("GET", `/api/courses?limit=200${q ? `&q=${encodeURIComponent(q)}` : ""}`);
    replace(table, h("table", {},
      h("thead", {}, h("tr", {}, h("th", {}, t("school.code")), h("th", {}, t("school.title")), h("th", {}, t("school.credits")), isStaff && h("th", {}, t("school.actions")))),
      h("tbody", {}, page.items.map((c) => h("tr", { dataset: { course: c.id } },
        h("td", {}, h("a", { href: `/courses/${c.id}`, "data-link": true }, c.code)),
        h("td", {}, c.title), h("td", {}, c.credits),
        isStaff && h("td", {}, h("button", {
          type: "button", class: "danger",
          onclick: async () => {
            if (!confirm(t("school.delete_course_confirm", { code: c.code }))) return;
            try { await api("DELETE", `/api/courses/${c.id}`); await load(); } catch (e) { failure(box, e); }
          },
        }, t("school.delete"))))))));
  }
  // A form the user may not use is null, not false: `?.` skips null and undefined only.
  const create = isStaff ? h("form", { class: "stack card" },
    h("h2", {}, t("school.new_course")),
    field(t("school.code"), { name: "code", required: true }),
    field(t("school.title"), { name: "title", required: true }),
    field(t("school.credits"), { name: "credits", type: "number", step: "0.1", min: "0", max: "99.9" }),
    field(t("school.description"), { name: "description" }, "textarea"),
    h("button", { type: "submit" }, t("school.create_course"))) : null;
  create?.addEventListener("submit", async (event) => {
    event.preventDefault();
    const v = values(create);
    if (v.credits) v.credits = Number(v.credits);
    try {
      await api("POST", "/api/courses", v);
      create.reset();
      replace(box, notice(t("school.course_created"), "good"));
      await load();
    } catch (e) { failure(box, e); }
  });
  replace(main, h("h1", {}, t("school.courses")), searchForm(t("school.code_or_title"), load), box, table, create);
  await load();
}

export async function course(main, { params, user, isStaff }) {
  const id = Number(params.id);
  const [c, mine] = await Promise.all([
    api("GET", `/api/courses/${id}`),
    user.role === "teacher" ? api("GET", `/api/sections?course=${id}&teacher=${user.id}&limit=1`) : null,
  ]);
  const mayEdit = isStaff;
  const mayFile = isStaff || (mine?.total ?? 0) > 0;
  const box = h("div");
  const files = h("div");
  async function load() {
    const page = await api("GET", `/api/course_attachments?course=${id}`);
    replace(files, page.items.length === 0 ? h("p", { class: "muted" }, t("school.no_files")) :
      h("ul", {}, page.items.map((f) => h("li", { class: "row" },
        h("button", { type: "button", class: "secondary", onclick: () => download(`/api/course_attachments/${f.id}/download`, f.filename) },
          t("school.file_line", { title: f.title, filename: f.filename, kib: Math.ceil(f.size / 1024) })),
        mayFile && h("button", {
          type: "button", class: "danger", "aria-label": t("school.delete_named", { name: f.title }),
          onclick: async () => {
            try { await api("DELETE", `/api/course_attachments/${f.id}`); await load(); } catch (e) { failure(box, e); }
          },
        }, t("school.delete"))))));
  }
  const upload = mayFile ? h("form", { class: "stack card" },
    h("h2", {}, t("school.add_file")),
    field(t("school.title"), { name: "title", required: true }),
    field(t("school.file"), { name: "file", type: "file", required: true }),
    h("button", { type: "submit" }, t("school.upload"))) : null;
  upload?.addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = new FormData();
    form.append("course", String(id));
    form.append("title", upload.elements.title.value);
    form.append("file", upload.elements.file.files[0] ?? new Blob());
    try {
      await api("POST", "/api/course_attachments", undefined, { form });
      upload.reset();
      await load();
    } catch (e) { failure(box, e); }
  });
  const edit = mayEdit ? h("form", { class: "stack card" },
    h("h2", {}, t("school.edit")),
    field(t("school.title"), { name: "title", value: c.title, required: true }),
    field(t("school.credits"), { name: "credits", type: "number", step: "0.1", value: c.credits }),
    h("button", { type: "submit" }, t("school.save"))) : null;
  edit?.addEventListener("submit", async (event) => {
    event.preventDefault();
    const v = values(edit);
    try {
      await api("PATCH", `/api/courses/${id}`, { title: v.title, credits: Number(v.credits) });
      replace(box, notice(t("school.saved"), "good"));
    } catch (e) { failure(box, e); }
  });
  replace(main, h("h1", {}, `${c.code} — ${c.title}`), h("p", {}, c.description),
    h("p", { class: "muted" }, t("school.credits_of", { credits: c.credits })), box,
    h("h2", {}, t("school.files")), files, upload, edit);
  await load();
}

export async function sections(main, { isStaff }) {
  const box = h("div");
  const table = h("div", { class: "table-wrap" });
  async function load(term = "") {
    const page = await api("GET", `/api/sections?limit=200${term ? `&term=${encodeURIComponent(term)}` : ""}`);
    replace(table, h("table", {},
      h("thead", {}, h("tr", {}, h("th", {}, t("school.section")), h("th", {}, t("school.term")), h("th", {}, t("school.teacher")),
        h("th", {}, t("school.enrolled")), h("th", {}, t("school.status")))),
      h("tbody", {}, page.items.map((s) => h("tr", {},
        h("td", {}, h("a", { href: `/sections/${s.id}`, "data-link": true }, `${s.course_code} ${s.section_code}`)),
        h("td", {}, s.term), h("td", {}, s.teacher_name),
        h("td", {}, `${s.enrolled} / ${s.capacity}`), h("td", {}, t(`section.${s.status}`)))))));
  }
  let create = null;
  if (isStaff) {
    const [courses, teachers] = await Promise.all([
      api("GET", "/api/courses?limit=200"), api("GET", "/api/users?role=teacher&limit=200")]);
    create = h("form", { class: "stack card" },
      h("h2", {}, t("school.new_section")),
      h("label", {}, t("school.course"), h("select", { name: "course_id", required: true },
        courses.items.map((c) => h("option", { value: c.id }, `${c.code} — ${c.title}`)))),
      field(t("school.section_code"), { name: "section_code", required: true }),
      field(t("school.term"), { name: "term", required: true, placeholder: "2026-fall" }),
      h("label", {}, t("school.teacher"), h("select", { name: "teacher_id", required: true },
        teachers.items.map((t) => h("option", { value: t.id }, `${t.display_name} (${t.username})`)))),
      field(t("school.capacity"), { name: "capacity", type: "number", min: 1, max: 1000, value: 30 }),
      h("label", {}, t("school.status"), h("select", { name: "status" },
        ["draft", "published", "archived"].map((v) => h("option", { value: v }, t(`section.${v}`))))),
      h("button", { type: "submit" }, t("school.create_section")));
    create.addEventListener("submit", async (event) => {
      event.preventDefault();
      const v = values(create);
      try {
        await api("POST", "/api/sections", {
          ...v, course_id: Number(v.course_id), teacher_id: Number(v.teacher_id), capacity: Number(v.capacity),
        });
        replace(box, notice(t("school.section_created"), "good"));
        await load();
      } catch (e) { failure(box, e); }
    });
  }
  replace(main, h("h1", {}, t("school.sections")), searchForm(t("school.term_hint"), load), box, table, create);
  await load();
}

export async function section(main, { params, user, isStaff, go }) {
  const id = Number(params.id);
  const s = await api("GET", `/api/sections/${id}`);
  const teaches = user.role === "teacher" && s.teacher_id === user.id;
  const box = h("div");
  const students = h("div");
  async function load() {
    const page = await api("GET", `/api/sections/${id}/enrollments?limit=200`);
    replace(students, h("ul", {}, page.items.map((e) => h("li", { class: "row" },
      t("school.roster_line", { name: e.display_name, username: e.username, number: e.number ? ` · ${e.number}` : "", email: e.email, when: when(e.enrolled_at) }),
      isStaff && h("button", {
        type: "button", class: "danger", "aria-label": t("school.remove_named", { name: e.display_name }),
        onclick: async () => {
          try { await api("DELETE", `/api/sections/${id}/enrollments/${e.student_id}`); await load(); } catch (err) { failure(box, err); }
        },
      }, t("school.remove"))))));
  }
  let enroll = null;
  if (isStaff) {
    enroll = h("form", { class: "row" },
      h("label", {}, t("school.student_search"), h("input", { name: "q", required: true })),
      h("button", { type: "submit" }, t("school.enroll")));
    enroll.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        const found = await api("GET", `/api/users?role=student&q=${encodeURIComponent(enroll.elements.q.value)}&limit=2`);
        if (found.items.length !== 1) throw new Error(t("school.one_student"));
        await api("POST", `/api/sections/${id}/enrollments`, { student_id: found.items[0].id });
        enroll.reset();
        await load();
      } catch (e) { failure(box, e); }
    });
  }
  let edit = null;
  if (isStaff || teaches) {
    edit = h("form", { class: "stack card" }, h("h2", {}, t("school.edit")),
      field(t("school.capacity"), { name: "capacity", type: "number", min: 1, max: 1000, value: s.capacity }),
      h("label", {}, t("school.status"), h("select", { name: "status" },
        ["draft", "published", "archived"].map((v) => h("option", { value: v, selected: v === s.status }, t(`section.${v}`))))),
      h("button", { type: "submit" }, t("school.save")),
      isStaff && h("button", {
        type: "button", class: "danger",
        onclick: async () => {
          if (!confirm(t("school.delete_section_confirm"))) return;
          try { await api("DELETE", `/api/sections/${id}`); go("/sections"); } catch (e) { failure(box, e); }
        },
      }, t("school.delete_section")));
    edit.addEventListener("submit", async (event) => {
      event.preventDefault();
      const v = values(edit);
      try {
        await api("PATCH", `/api/sections/${id}`, { capacity: Number(v.capacity), status: v.status });
        replace(box, notice(t("school.saved"), "good"));
      } catch (e) { failure(box, e); }
    });
  }
  const mayList = isStaff || teaches;
  replace(main, h("h1", {}, `${s.course_code} ${s.section_code} · ${s.term}`),
    h("p", { class: "muted" }, t("school.section_line", { course: s.course_title, teacher: s.teacher_name, enrolled: s.enrolled, capacity: s.capacity, status: t(`section.${s.status}`) })),
    box, mayList && h("h2", {}, t("school.students")), mayList && students, enroll, edit);
  if (mayList) await load();
}
