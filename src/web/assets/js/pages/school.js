// The catalogue: courses (with their files) and sections (with their
// students). Buttons appear only for what the user's role may do.

import { api, download } from "../api.js";
import { field, h, notice, replace, values, when } from "../dom.js";

function failure(box, error) {
  replace(box, notice([error.message, ...error.details()].join(" — "), "bad"));
}

function searchForm(placeholder, onSearch) {
  const form = h("form", { class: "row", role: "search" },
    h("label", {}, "Search", h("input", { name: "q", type: "search", placeholder })),
    h("button", { type: "submit", class: "secondary" }, "Search"));
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
      h("thead", {}, h("tr", {}, h("th", {}, "Code"), h("th", {}, "Title"), h("th", {}, "Credits"), isStaff && h("th", {}, "Actions"))),
      h("tbody", {}, page.items.map((c) => h("tr", { dataset: { course: c.id } },
        h("td", {}, h("a", { href: `/courses/${c.id}`, "data-link": true }, c.code)),
        h("td", {}, c.title), h("td", {}, c.credits),
        isStaff && h("td", {}, h("button", {
          type: "button", class: "danger",
          onclick: async () => {
            if (!confirm(`Delete ${c.code} with its sections, enrollments and files?`)) return;
            try { await api("DELETE", `/api/courses/${c.id}`); await load(); } catch (e) { failure(box, e); }
          },
        }, "Delete")))))));
  }
  // A form the user may not use is null, not false: `?.` skips null and undefined only.
  const create = isStaff ? h("form", { class: "stack card" },
    h("h2", {}, "New course"),
    field("Code", { name: "code", required: true }),
    field("Title", { name: "title", required: true }),
    field("Credits", { name: "credits", type: "number", step: "0.1", min: "0", max: "99.9" }),
    field("Description", { name: "description" }, "textarea"),
    h("button", { type: "submit" }, "Create course")) : null;
  create?.addEventListener("submit", async (event) => {
    event.preventDefault();
    const v = values(create);
    if (v.credits) v.credits = Number(v.credits);
    try {
      await api("POST", "/api/courses", v);
      create.reset();
      replace(box, notice("Course created.", "good"));
      await load();
    } catch (e) { failure(box, e); }
  });
  replace(main, h("h1", {}, "Courses"), searchForm("Code or title", load), box, table, create);
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
    replace(files, page.items.length === 0 ? h("p", { class: "muted" }, "No files yet.") :
      h("ul", {}, page.items.map((f) => h("li", { class: "row" },
        h("button", { type: "button", class: "secondary", onclick: () => download(`/api/course_attachments/${f.id}/download`, f.filename) },
          `${f.title} (${f.filename}, ${Math.ceil(f.size / 1024)} KiB)`),
        mayFile && h("button", {
          type: "button", class: "danger", "aria-label": `Delete ${f.title}`,
          onclick: async () => {
            try { await api("DELETE", `/api/course_attachments/${f.id}`); await load(); } catch (e) { failure(box, e); }
          },
        }, "Delete")))));
  }
  const upload = mayFile ? h("form", { class: "stack card" },
    h("h2", {}, "Add a file"),
    field("Title", { name: "title", required: true }),
    field("File", { name: "file", type: "file", required: true }),
    h("button", { type: "submit" }, "Upload")) : null;
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
    h("h2", {}, "Edit"),
    field("Title", { name: "title", value: c.title, required: true }),
    field("Credits", { name: "credits", type: "number", step: "0.1", value: c.credits }),
    h("button", { type: "submit" }, "Save")) : null;
  edit?.addEventListener("submit", async (event) => {
    event.preventDefault();
    const v = values(edit);
    try {
      await api("PATCH", `/api/courses/${id}`, { title: v.title, credits: Number(v.credits) });
      replace(box, notice("Saved.", "good"));
    } catch (e) { failure(box, e); }
  });
  replace(main, h("h1", {}, `${c.code} — ${c.title}`), h("p", {}, c.description),
    h("p", { class: "muted" }, `${c.credits} credits`), box,
    h("h2", {}, "Files"), files, upload, edit);
  await load();
}

export async function sections(main, { isStaff }) {
  const box = h("div");
  const table = h("div", { class: "table-wrap" });
  async function load(term = "") {
    const page = await api("GET", `/api/sections?limit=200${term ? `&term=${encodeURIComponent(term)}` : ""}`);
    replace(table, h("table", {},
      h("thead", {}, h("tr", {}, h("th", {}, "Section"), h("th", {}, "Term"), h("th", {}, "Teacher"),
        h("th", {}, "Enrolled"), h("th", {}, "Status"))),
      h("tbody", {}, page.items.map((s) => h("tr", {},
        h("td", {}, h("a", { href: `/sections/${s.id}`, "data-link": true }, `${s.course_code} ${s.section_code}`)),
        h("td", {}, s.term), h("td", {}, s.teacher_name),
        h("td", {}, `${s.enrolled} / ${s.capacity}`), h("td", {}, s.status))))));
  }
  let create = null;
  if (isStaff) {
    const [courses, teachers] = await Promise.all([
      api("GET", "/api/courses?limit=200"), api("GET", "/api/users?role=teacher&limit=200")]);
    create = h("form", { class: "stack card" },
      h("h2", {}, "New section"),
      h("label", {}, "Course", h("select", { name: "course_id", required: true },
        courses.items.map((c) => h("option", { value: c.id }, `${c.code} — ${c.title}`)))),
      field("Section code", { name: "section_code", required: true }),
      field("Term", { name: "term", required: true, placeholder: "2026-fall" }),
      h("label", {}, "Teacher", h("select", { name: "teacher_id", required: true },
        teachers.items.map((t) => h("option", { value: t.id }, `${t.display_name} (${t.username})`)))),
      field("Capacity", { name: "capacity", type: "number", min: 1, max: 1000, value: 30 }),
      h("label", {}, "Status", h("select", { name: "status" },
        ["draft", "published", "archived"].map((s) => h("option", { value: s }, s)))),
      h("button", { type: "submit" }, "Create section"));
    create.addEventListener("submit", async (event) => {
      event.preventDefault();
      const v = values(create);
      try {
        await api("POST", "/api/sections", {
          ...v, course_id: Number(v.course_id), teacher_id: Number(v.teacher_id), capacity: Number(v.capacity),
        });
        replace(box, notice("Section created.", "good"));
        await load();
      } catch (e) { failure(box, e); }
    });
  }
  replace(main, h("h1", {}, "Sections"), searchForm("Term, e.g. 2026-fall", load), box, table, create);
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
      `${e.display_name} · ${e.username}${e.number ? ` · ${e.number}` : ""} (${e.email}), since ${when(e.enrolled_at)}`,
      isStaff && h("button", {
        type: "button", class: "danger", "aria-label": `Remove ${e.display_name}`,
        onclick: async () => {
          try { await api("DELETE", `/api/sections/${id}/enrollments/${e.student_id}`); await load(); } catch (err) { failure(box, err); }
        },
      }, "Remove")))));
  }
  let enroll = null;
  if (isStaff) {
    enroll = h("form", { class: "row" },
      h("label", {}, "Student username or email", h("input", { name: "q", required: true })),
      h("button", { type: "submit" }, "Enroll"));
    enroll.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        const found = await api("GET", `/api/users?role=student&q=${encodeURIComponent(enroll.elements.q.value)}&limit=2`);
        if (found.items.length !== 1) throw new Error("type enough to name exactly one student");
        await api("POST", `/api/sections/${id}/enrollments`, { student_id: found.items[0].id });
        enroll.reset();
        await load();
      } catch (e) { failure(box, e); }
    });
  }
  let edit = null;
  if (isStaff || teaches) {
    edit = h("form", { class: "stack card" }, h("h2", {}, "Edit"),
      field("Capacity", { name: "capacity", type: "number", min: 1, max: 1000, value: s.capacity }),
      h("label", {}, "Status", h("select", { name: "status" },
        ["draft", "published", "archived"].map((v) => h("option", { value: v, selected: v === s.status }, v)))),
      h("button", { type: "submit" }, "Save"),
      isStaff && h("button", {
        type: "button", class: "danger",
        onclick: async () => {
          if (!confirm("Delete this section and its enrollments?")) return;
          try { await api("DELETE", `/api/sections/${id}`); go("/sections"); } catch (e) { failure(box, e); }
        },
      }, "Delete section"));
    edit.addEventListener("submit", async (event) => {
      event.preventDefault();
      const v = values(edit);
      try {
        await api("PATCH", `/api/sections/${id}`, { capacity: Number(v.capacity), status: v.status });
        replace(box, notice("Saved.", "good"));
      } catch (e) { failure(box, e); }
    });
  }
  const mayList = isStaff || teaches;
  replace(main, h("h1", {}, `${s.course_code} ${s.section_code} · ${s.term}`),
    h("p", { class: "muted" }, `${s.course_title} · taught by ${s.teacher_name} · ${s.enrolled} of ${s.capacity} places taken · ${s.status}`),
    box, mayList && h("h2", {}, "Students"), mayList && students, enroll, edit);
  if (mayList) await load();
}
