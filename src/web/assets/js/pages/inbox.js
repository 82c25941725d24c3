// A recipient's inbox: newest first, live. Opening an item marks it
// delivered; Acknowledge acknowledges it. Changes from the user's other tabs
// and devices arrive as they happen.

import { api } from "../api.js";
import { h, replace, when } from "../dom.js";
import { t } from "../i18n.js";

export async function page(main, { live }) {
  const list = h("div", { id: "inbox" });
  const empty = h("p", { class: "muted", id: "inbox-empty" }, t("inbox.empty"));
  const items = new Map();

  function paint(entry) {
    const { item, open } = entry;
    const unread = item.state !== "acknowledged";
    const toggle = h("button", {
      type: "button", class: "secondary", "aria-expanded": String(open),
      onclick: () => {
        entry.open = !entry.open;
        if (entry.open && item.state === "queued") live.send({ type: "delivered", delivery_id: item.id });
        paint(entry);
      },
    }, open ? t("inbox.close") : t("inbox.open"));
    const ack = unread && h("button", {
      type: "button", class: "ack",
      onclick: (event) => {
        event.currentTarget.disabled = true;
        live.send({ type: "ack", delivery_id: item.id });
      },
    }, t("inbox.acknowledge"));
    entry.el.className = `card item${unread ? " unread" : ""}`;
    entry.el.dataset.state = item.state;
    replace(entry.el,
      h("div", { class: "spread" },
        h("h2", {}, item.announcement.title),
        h("span", { class: `pill ${item.state}` }, t(`state.${item.state}`))),
      h("p", { class: "muted" }, t("inbox.from", { name: item.announcement.publisher_name, when: when(item.announcement.published_at) }),
        entry.reminded ? t("inbox.reminded") : ""),
      open && h("div", { class: "body" }, item.announcement.body),
      h("div", { class: "row" }, toggle, ack));
  }

  function add(item, { top = false } = {}) {
    const known = items.get(item.id);
    if (known) {
      known.item = { ...known.item, ...item };
      return paint(known);
    }
    const entry = { item, open: false, reminded: false, el: h("article", { dataset: { delivery: item.id } }) };
    items.set(item.id, entry);
    paint(entry);
    if (top) list.prepend(entry.el);
    else list.append(entry.el);
    empty.hidden = true;
  }

  /** The first page afresh: on opening, and when the socket says too much changed to replay. */
  async function load() {
    const page = await api("GET", "/api/deliveries?limit=100");
    items.clear();
    replace(list);
    for (const item of page.items) add(item);
    empty.hidden = items.size > 0;
  }

  await load();
  replace(main, h("h1", {}, t("inbox.title")), empty, list);

  const handlers = {
    "delivery.created": (m) => add(m.delivery, { top: true }),
    "delivery.updated": (m) => {
      const entry = items.get(m.delivery_id);
      if (!entry) return;
      Object.assign(entry.item, { state: m.state, delivered_at: m.delivered_at, ack_at: m.ack_at });
      paint(entry);
    },
    "announcement.withdrawn": (m) => {
      for (const [id, entry] of items) {
        if (entry.item.announcement.id === m.announcement_id) {
          entry.el.remove();
          items.delete(id);
        }
      }
      empty.hidden = items.size > 0;
    },
    resync: () => load(),
    reminder: (m) => {
      const entry = items.get(m.delivery_id);
      if (entry) {
        entry.reminded = true;
        paint(entry);
      }
    },
  };
  const listeners = Object.entries(handlers).map(([type, handle]) => {
    const listener = (event) => handle(event.detail);
    live.addEventListener(type, listener);
    return [type, listener];
  });
  return () => listeners.forEach(([type, listener]) => live.removeEventListener(type, listener));
}
