// A recipient's inbox: newest first, live. Opening an item marks it
// delivered; Acknowledge acknowledges it. Changes from the user's other tabs
// and devices arrive as they happen. An item shows when it is due (and is
// marked overdue once that passes unacknowledged); expired ones move under
// "Earlier" and no longer count as unread.

import { api } from "../api.js";
import { h, replace, when } from "../dom.js";
import { t } from "../i18n.js";

/** Whether `iso` is set and has passed. */
function passed(iso) {
  return Boolean(iso) && new Date(iso).getTime() <= Date.now();
}

export async function page(main, { live }) {
  const list = h("div", { id: "inbox" });
  const earlierList = h("div", { id: "inbox-earlier" });
  const earlier = h("section", { hidden: true, "aria-labelledby": "earlier-title" },
    h("h2", { id: "earlier-title" }, t("inbox.earlier")), earlierList);
  const empty = h("p", { class: "muted", id: "inbox-empty" }, t("inbox.empty"));
  const items = new Map();
  let expiryTimer;

  function paint(entry) {
    const { item, open } = entry;
    const a = item.announcement;
    const expired = passed(a.expires_at);
    const unread = item.state !== "acknowledged" && !expired;
    const overdue = unread && passed(a.ack_due_at);
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
    entry.el.className = `card item${unread ? " unread" : ""}${overdue ? " overdue" : ""}`;
    entry.el.dataset.state = item.state;
    replace(entry.el,
      h("div", { class: "spread" },
        h("h2", {}, a.title),
        h("span", { class: "row" },
          overdue && h("span", { class: "pill overdue" }, t("inbox.overdue")),
          h("span", { class: `pill ${item.state}` }, t(`state.${item.state}`)))),
      h("p", { class: "muted" }, t("inbox.from", { name: a.publisher_name, when: when(a.published_at) }),
        entry.reminded ? t("inbox.reminded") : ""),
      a.ack_due_at && !expired && h("p", { class: `due${overdue ? " overdue" : ""}` }, t("inbox.due", { when: when(a.ack_due_at) })),
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
    const into = passed(item.announcement.expires_at) ? earlierList : list;
    if (top) into.prepend(entry.el);
    else into.append(entry.el);
    empty.hidden = true;
    earlier.hidden = earlierList.childElementCount === 0;
  }

  /** At the next expiry, the inbox is read again and the badge recounted. */
  function watchExpiry() {
    clearTimeout(expiryTimer);
    const next = [...items.values()].map((e) => e.item.announcement.expires_at)
      .filter((at) => at && !passed(at)).map((at) => new Date(at).getTime()).sort((x, y) => x - y)[0];
    if (next === undefined) return;
    expiryTimer = setTimeout(async () => {
      await load();
      const { unread } = await api("GET", "/api/unread_count");
      live.dispatchEvent(new CustomEvent("unread_count", { detail: { unread } }));
    }, Math.min(next - Date.now() + 500, 2 ** 31 - 1));
  }

  /** The first page afresh: on opening, and when the socket says too much changed to replay. */
  async function load() {
    const page = await api("GET", "/api/deliveries?limit=100");
    items.clear();
    replace(list);
    replace(earlierList);
    for (const item of page.items) add(item);
    empty.hidden = items.size > 0;
    earlier.hidden = earlierList.childElementCount === 0;
    watchExpiry();
  }

  await load();
  replace(main, h("h1", {}, t("inbox.title")), empty, list, earlier);

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
  return () => {
    clearTimeout(expiryTimer);
    listeners.forEach(([type, listener]) => live.removeEventListener(type, listener));
  };
}
