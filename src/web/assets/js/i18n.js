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
