// Publishing, and following what was published: live acknowledgment
// figures, withdrawal, reminders (with their cooldown), who has not
// acknowledged, and that list as a CSV file.

import { api, download, schoolConfig } from "../api.js";
import { field, h, notice, replace, values, when } from "../dom.js";
import { ackLine, sectionBars } from "../charts.js";
import { explain, t } from "../i18n.js";
import { follow } from "../tasks.js";

/** The audience by name, as the server names it (never an id). */
function audienceText(a) {
  const name = a.audience_name;
  if (a.audience.kind === "all_students" || !name) return t("audience.all");
  return name.section_code
    ? t("audience.section", { course: name.course_code, section: name.section_code, term: name.term })
    : t("audience.course", { course: name.course_code, title: name.course_title });
}

/** What the caller may publish to: staff anyone; teachers their sections and those sections' courses. */
async function audiences(isStaff) {
  const options = [];
  if (isStaff) {
    options.push([t("audience.all"), { kind: "all_students" }]);
    const courses = await api("GET", "/api/courses?limit=200");
    for (const c of courses.items) options.push([t("audience.course", { course: c.code, title: c.title }), { kind: "course", course_id: c.id }]);
    const sections = await api("GET", "/api/sections?limit=200");
    for (const s of sections.items) {
      options.push([t("audience.section", { course: s.course_code, section: s.section_code, term: s.term }), { kind: "section", section_id: s.id }]);
    }
  } else {
    const sections = await api("GET", "/api/me/sections?limit=200");
    const courses = new Map();
    for (const s of sections.items) {
      options.push([t("audience.section", { course: s.course_code, section: s.section_code, term: s.term }), { kind: "section", section_id: s.id }]);
      courses.set(s.course_id, t("audience.course", { course: s.course_code, title: s.course_title }));
    }
    for (const [id, label] of courses) options.push([label, { kind: "course", course_id: id }]);
  }
  return options;
}

export async function compose(main, { go, isStaff }) {
  const [options, school] = await Promise.all([audiences(isStaff), schoolConfig()]);
  const box = h("div");
  const form = h("form", { class: "stack", novalidate: true },
    field(t("compose.title_field"), { name: "title", required: true, maxlength: 200 }),
    field(t("compose.message"), { name: "body", required: true }, "textarea"),
    h("label", {}, t("compose.audience"), h("select", { name: "audience", required: true },
      options.map(([label, value]) => h("option", { value: JSON.stringify(value) }, label)))),
    field(t("compose.publish_at", { zone: school.timezone }),
      { name: "publish_at", type: "datetime-local" }),
    field(t("compose.ack_due_at", { zone: school.timezone }), { name: "ack_due_at", type: "datetime-local" }),
    field(t("compose.expires_at", { zone: school.timezone }), { name: "expires_at", type: "datetime-local" }),
    field(t("compose.escalation"), { name: "escalation", placeholder: school.escalation, "aria-describedby": "ladder-hint" }),
    h("p", { class: "muted", id: "ladder-hint" }, t("compose.escalation_hint", { ladder: school.escalation }),
      school.quiet_hours ? ` ${t("compose.quiet_hours", { hours: school.quiet_hours })}` : ""),
    h("button", { type: "submit" }, t("compose.publish")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const v = values(form);
    const body = { title: v.title ?? "", body: v.body ?? "", audience: JSON.parse(v.audience) };
    // A local time on the school's clock: the server reads it in the school's zone.
    for (const name of ["publish_at", "ack_due_at", "expires_at", "escalation"]) if (v[name]) body[name] = v[name];
    try {
      await api("POST", "/api/announcements", body);
      go("/announcements");
    } catch (error) {
      replace(box, notice(explain(error), "bad"));
    }
  });
  replace(main, h("h1", {}, t("compose.title")),
    options.length ? form : notice(t("compose.no_audience"), "bad"), box);
}

function figures(stats) {
  const rate = Math.round((stats.ack_rate ?? 0) * 100);
  const charts = [];
  if (stats.by_section?.length) {
    charts.push(h("h3", { class: "chart-title" }, t("figures.by_section")), sectionBars(stats.by_section));
  }
  if (stats.timeline && stats.total) {
    charts.push(h("h3", { class: "chart-title" }, t("figures.since")), ackLine(stats.timeline, stats.total));
  }
  const deadline = stats.deadline && h("div", { class: "figures deadline" },
    h("span", {}, t("figures.due", { when: when(stats.deadline.ack_due_at) })),
    h("span", {}, h("b", { class: "on-time" }, stats.deadline.on_time), t("figures.on_time")),
    h("span", {}, h("b", { class: "late" }, stats.deadline.late), t("figures.late")),
    h("span", {}, h("b", { class: "missing" }, stats.deadline.missing), t("figures.missing")));
  return [
    deadline,
    h("div", { class: "figures" },
      h("span", {}, h("b", { class: "total" }, stats.total), t("figures.recipients")),
      h("span", {}, h("b", { class: "opened" }, stats.delivered + stats.acknowledged), t("figures.opened")),
      h("span", {}, h("b", { class: "acknowledged" }, stats.acknowledged), t("figures.acknowledged")),
      h("span", {}, h("b", { class: "rate" }, `${rate}%`))),
    h("div", { class: "progress", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": rate,
      "aria-label": t("figures.progress") }, h("span", { style: undefined, dataset: { rate } })),
    charts.length ? h("details", { class: "charts" }, h("summary", {}, t("figures.charts")), ...charts) : null,
  ];
}

export async function mine(main, { live }) {
  const list = await api("GET", "/api/announcements?limit=50");
  const cards = new Map();
  const watched = [];

  function setFigures(id, stats) {
    const card = cards.get(id);
    if (!card) return;
    // Live updates redraw the charts; an opened "Charts" stays open.
    const open = card.figures.querySelector("details.charts")?.open ?? false;
    replace(card.figures, figures(stats));
    const charts = card.figures.querySelector("details.charts");
    if (charts) charts.open = open;
    // Widths are set from script, not inline styles: the CSP allows none.
    card.figures.querySelector(".progress > span").style.width = `${Math.round((stats.ack_rate ?? 0) * 100)}%`;
  }

  function card(a) {
    const box = h("div");
    const extra = h("div");
    const figuresBox = h("div", { class: "stats" });
    const actions = h("div", { class: "row" });
    const el = h("article", { class: "card announcement", dataset: { announcement: a.id } },
      h("div", { class: "spread" }, h("h2", {}, a.title), h("span", { class: "pill" }, t(`status.${a.status}`))),
      h("p", { class: "muted" }, `${audienceText(a)} · ${a.published_at ? t("card.published", { when: when(a.published_at) }) : a.publish_at ? t("card.scheduled", { when: when(a.publish_at) }) : t("card.draft")}`,
        a.ack_due_at ? ` · ${t("card.due", { when: when(a.ack_due_at) })}` : "",
        a.expires_at ? ` · ${t("card.expires", { when: when(a.expires_at) })}` : ""),
      figuresBox, (a.ack_due_at || a.status === "published") && ladder(a), actions, box, extra);
    cards.set(a.id, { el, figures: figuresBox });
    if (a.status === "published") {
      actions.append(
        h("button", { type: "button", class: "secondary", onclick: () => remind(a, box) }, t("card.remind")),
        h("button", { type: "button", class: "secondary", onclick: () => unacked(a, extra) }, t("card.who")),
        h("button", { type: "button", class: "secondary", onclick: () => exportUnacked(a, box) }, t("card.export")),
        h("button", { type: "button", class: "danger", onclick: () => withdraw(a, box) }, t("card.withdraw")));
    }
    return el;
  }

  /** The ladder's steps and the reminders sent, read when opened. */
  function ladder(a) {
    const steps = h("ol", { class: "ladder-steps" });
    const details = h("details", { class: "ladder" }, h("summary", {}, t("ladder.title")), steps);
    details.addEventListener("toggle", async () => {
      if (!details.open) return;
      const history = await api("GET", `/api/announcements/${a.id}/escalation`);
      replace(steps, history.length ? history.map((step) => h("li", { dataset: { channel: step.channel, state: step.state } },
        t("ladder.step", {
          channel: t(`ladder.channel.${step.channel}`),
          when: when(step.state === "pending" ? step.run_at : step.ran_at ?? step.run_at),
          state: t(`ladder.state.${step.state}`),
        }),
        step.state === "done" ? ` · ${t(step.channel === "summary" ? "ladder.missing" : "ladder.reached", { count: step.reached ?? 0 })}` : ""))
        : h("li", { class: "muted" }, t("ladder.none")));
    });
    return details;
  }

  async function remind(a, box) {
    try {
      const result = await api("POST", `/api/announcements/${a.id}/remind_unacked`);
      replace(box, notice(t("remind.done", { count: result.reminded }), "good"));
    } catch (error) {
      const wait = error.headers?.get("retry-after");
      replace(box, notice(error.status === 429 ? t("remind.cooling", { seconds: wait }) : explain(error), "bad"));
    }
  }

  async function unacked(a, extra) {
    const people = await api("GET", `/api/announcements/${a.id}/unacked?limit=200`);
    replace(extra, h("div", { class: "table-wrap" }, h("table", {},
      h("caption", { class: "muted" }, t("unacked.caption", { count: people.total })),
      h("thead", {}, h("tr", {}, ["student", "section", "username", "number", "email", "state", "reminders"]
        .map((column) => h("th", {}, t(`unacked.${column}`))))),
      h("tbody", {}, people.items.map((p) => h("tr", {},
        h("td", {}, p.display_name), h("td", {}, p.sections.join(", ")), h("td", {}, p.username),
        h("td", {}, p.number ?? ""), h("td", {}, p.email), h("td", {}, t(`state.${p.state}`)), h("td", {}, p.retry_count)))))));
  }

  async function exportUnacked(a, box) {
    try {
      const { task_id } = await api("POST", `/api/announcements/${a.id}/exports/unacked`);
      replace(box, notice(t("export.preparing")));
      const task = await follow(task_id);
      await download(task.result.download_url, `unacked-${a.id}.csv`);
      replace(box, notice(t("export.done", { count: task.result.count }), "good"));
    } catch (error) {
      replace(box, notice(explain(error), "bad"));
    }
  }

  async function withdraw(a, box) {
    if (!confirm(t("withdraw.confirm", { title: a.title }))) return;
    try {
      await api("POST", `/api/announcements/${a.id}/withdraw`);
      replace(box, notice(t("withdraw.done"), "good"));
    } catch (error) {
      replace(box, notice(explain(error), "bad"));
    }
  }

  const container = h("div", { id: "announcements" }, list.items.map(card));
  const alerts = h("div", { id: "due-alerts", "aria-live": "polite" });
  replace(main,
    h("div", { class: "spread" }, h("h1", {}, t("mine.title")),
      h("a", { class: "button", href: "/announcements/new", "data-link": true }, t("mine.new"))),
    alerts,
    list.items.length ? container : h("p", { class: "muted" }, t("mine.empty")));

  for (const a of list.items) {
    if (a.status !== "published" && a.status !== "withdrawn") continue;
    watched.push(a.id);
    api("GET", `/api/announcements/${a.id}/stats`).then((stats) => setFigures(a.id, stats)).catch(() => {});
  }
  const subscribe = () => watched.forEach((id) => live.send({ type: "subscribe_stats", announcement_id: id }));
  const onStats = (event) => setFigures(event.detail.announcement_id, event.detail.stats);
  live.addEventListener("announcement.stats", onStats);
  // The ladder's summary at the due time, live.
  const onDue = (event) => {
    const { announcement_id: id, missing } = event.detail;
    const title = list.items.find((a) => a.id === id)?.title ?? `#${id}`;
    alerts.append(notice(t("due.summary", { title, count: missing }), missing ? "bad" : "good"));
  };
  live.addEventListener("announcement.due", onDue);
  live.addEventListener("hello", subscribe);
  subscribe();
  return () => {
    live.removeEventListener("announcement.stats", onStats);
    live.removeEventListener("announcement.due", onDue);
    live.removeEventListener("hello", subscribe);
    watched.forEach((id) => live.send({ type: "unsubscribe_stats", announcement_id: id }));
  };
}
