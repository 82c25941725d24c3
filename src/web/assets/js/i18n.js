// The app's words in each language it speaks: one catalog per locale
// (js/locales/<locale>.json), with {placeholders} and plural forms chosen by
// Intl.PluralRules, never sentences glued from pieces.
//
// The language: the signed-in user's choice, else the browser's
// (navigator.languages), else the school's default (GET /api/config); a
// choice made while signed out is remembered in this browser.

import en from "./locales/en.json" with { type: "json" };
import zhCN from "./locales/zh-CN.json" with { type: "json" };

const CATALOGS = { en, "zh-CN": zhCN };
const CHOSEN = "classbell.locale";
let current = "en";

/** The language classbell speaks that a BCP 47 tag asks for, if any. */
function spoken(tag) {
  const lang = String(tag ?? "").toLowerCase().split("-")[0];
  return lang === "zh" ? "zh-CN" : lang === "en" ? "en" : null;
}

/** Picks the language: `userLocale` (theirs, if signed in), else what this browser chose or asks for, else `fallback`. */
export function chooseLocale(userLocale, fallback) {
  const remembered = localStorage.getItem(CHOSEN);
  const asked = (navigator.languages ?? [navigator.language]).map(spoken).find(Boolean);
  current = [userLocale, remembered, asked, fallback, "en"].find((l) => l && CATALOGS[l]);
  document.documentElement.lang = current;
  return current;
}

/** Remembers a choice made in this browser (the app also saves it to the account). */
export function rememberLocale(locale) {
  localStorage.setItem(CHOSEN, locale);
}

export function locale() {
  return current;
}

export const LOCALES = Object.keys(CATALOGS);

/** A language's name for itself, e.g. 简体中文. */
export function nameOf(l) {
  return CATALOGS[l]["language.name"];
}

/**
 * `t("inbox.from", {name, when})`: the text of `key` in the current
 * language, with {placeholders} filled; a message that is an object of
 * plural forms picks one by `params.count`.
 */
export function t(key, params = {}) {
  let message = CATALOGS[current]?.[key] ?? CATALOGS.en[key];
  if (message === undefined) {
    console.error(`no catalog has ${key}`);
    return key;
  }
  if (typeof message === "object") {
    const form = new Intl.PluralRules(current).select(Number(params.count ?? 0));
    message = message[form] ?? message.other;
  }
  return message.replace(/\{(\w+)\}/g, (_, name) => String(params[name] ?? `{${name}}`));
}

/** Whether the catalogs have `key` (for keys built from what the server sends). */
export function has(key) {
  return Object.hasOwn(CATALOGS.en, key);
}

/** `t(key)` when the catalogs have it, else `fallback`. */
function tOr(key, fallback, params) {
  return has(key) ? t(key, params) : fallback;
}

/** One coded reason (`{code, message, params}`), in the reader's language. */
function reason(r) {
  const params = Object.fromEntries(Object.entries(r?.params ?? {}).map(([name, value]) =>
    [name, typeof value === "string" ? tOr(`term.${value}`, value) : value]));
  return tOr(`error.field.${r?.code}`, r?.message ?? String(r), params);
}

/**
 * What went wrong, in the reader's language: the error's code as a
 * sentence, then each field's reasons by their codes and params. The
 * server's English words are the fallback for codes this app does not know.
 */
export function explain(error) {
  // fetch fails with a TypeError when the server cannot be reached; the
  // app's own errors are already in the reader's language.
  if (!error?.status) return error instanceof TypeError ? t("error.network") : String(error?.message ?? error);
  if (!error.code) return t("error.status", { status: error.status });
  const seconds = Number(error.headers?.get?.("retry-after") ?? 0);
  const head = tOr(`error.${error.code}`, error.message, { seconds });
  const lines = Object.entries(error.fields ?? {}).flatMap(([name, reasons]) =>
    reasons.map((r) => t("error.line", { field: tOr(`field.${name}`, name), reason: reason(r) })));
  return [head, ...lines].join(" — ");
}
