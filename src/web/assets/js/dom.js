// Building DOM without HTML strings: nothing a user typed is ever parsed as markup.

import { locale } from "./i18n.js";

/** `h("button", {onclick, class: "x"}, "text", child)`; attributes starting with `on` are listeners. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let schoolZone;

/** Times are shown on the school's clock (`GET /api/config`), whatever the viewer's own zone. */
export function useTimeZone(zone) {
  schoolZone = zone;
}

export function when(iso) {
  if (!iso) return "";
  const options = { dateStyle: "medium", timeStyle: "short", timeZone: schoolZone };
  try {
    return new Date(iso).toLocaleString(locale(), options);
  } catch {
    return new Date(iso).toLocaleString();
  }
}

/** A labelled input: `field("Username", {name: "username", autocomplete: "username"})`. */
export function field(label, attrs = {}, tag = "input") {
  return h("label", {}, label, h(tag, attrs));
}

/** Form values as an object (empty strings left out). */
export function values(form) {
  const out = {};
  for (const [key, value] of new FormData(form)) if (value !== "") out[key] = value;
  return out;
}

export function notice(text, kind = "") {
  return h("div", { class: `notice ${kind}`, role: kind === "bad" ? "alert" : "status" }, text);
}
