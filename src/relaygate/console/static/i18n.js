// Translations: one JSON dictionary per language under i18n/. Chinese by default; the
// choice is kept in localStorage. A key missing from a dictionary shows the English text,
// then the key itself.
export const LANGUAGES = [
  { code: "zh-CN", label: "中文" },
  { code: "en", label: "English" },
];
const STORE = "rg_lang";
let dict = {};
let fallback = {};
let lang = "zh-CN";

// The base dictionary, then every part listed in i18n/parts/index.json (each area of the
// console keeps its own texts in parts/<name>.<code>.json); a missing part is skipped.
let partNames = null;

async function fetchJson(path) {
  const response = await fetch(`/console/assets/i18n/${path}`);
  if (!response.ok) {
    await response.text().catch(() => "");  // an unread body keeps the request open
    throw new Error(`no dictionary ${path}`);
  }
  return response.json();
}

async function fetchDict(code) {
  const base = await fetchJson(`${code}.json`);
  if (partNames === null) {
    try {
      partNames = await fetchJson("parts/index.json");
    } catch {
      partNames = [];
    }
  }
  const parts = await Promise.all(
    partNames.map((name) => fetchJson(`parts/${name}.${code}.json`).catch(() => ({}))),
  );
  return Object.assign({}, base, ...parts);
}

export async function loadLanguage(code) {
  const wanted = LANGUAGES.some((l) => l.code === code) ? code : "zh-CN";
  dict = await fetchDict(wanted);
  if (wanted !== "en" && Object.keys(fallback).length === 0) {
    try {
      fallback = await fetchDict("en");
    } catch {
      fallback = {};
    }
  } else if (wanted === "en") {
    fallback = dict;
  }
  lang = wanted;
  document.documentElement.lang = wanted;
  try {
    localStorage.setItem(STORE, wanted);
  } catch {
    /* private mode: the choice lasts for this page */
  }
}

export function savedLanguage() {
  try {
    return localStorage.getItem(STORE) || "zh-CN";
  } catch {
    return "zh-CN";
  }
}

export function currentLanguage() {
  return lang;
}

export function t(key, vars = {}) {
  let text = dict[key] ?? fallback[key] ?? key;
  for (const [name, value] of Object.entries(vars)) {
    text = text.split(`{${name}}`).join(String(value));
  }
  return text;
}

// A server error in the user's language when the dictionary knows its code.
export function errorText(err) {
  const key = err && err.code ? `error.${err.code}` : "";
  if (key && (dict[key] || fallback[key])) return t(key);
  return (err && err.message) || t("error.generic");
}
