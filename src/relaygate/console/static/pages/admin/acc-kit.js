// Small helpers shared by the admin account pages (users, plans, codes, content policy,
// all logs, audit): tables, inputs and error boxes, built with dom.js (text nodes only).
import { clear, h, message } from "../../dom.js";
import { errorText, t } from "../../i18n.js";

export function table(testid, headers, rows) {
  return h("div", { class: "table-wrap" }, h("table", { "data-testid": testid },
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", {}, x)))),
    rows instanceof Element && rows.tagName === "TBODY" ? rows : h("tbody", {}, rows)));
}

export function input(testid, attrs = {}) {
  return h("input", { "data-testid": testid, ...attrs });
}

export function select(testid, options, value) {
  return h("select", { "data-testid": testid },
    options.map(([v, label]) => h("option", { value: v, selected: v === value }, label)));
}

export function button(label, testid, onclick, kind = "") {
  return h("button", { type: "button", class: kind, "data-testid": testid, onclick }, label);
}

// Runs an async action; an error is shown in `box` (in the user's language), the result
// (a text) as a success message. Returns the action's value, or undefined on failure.
export async function attempt(box, fn, okText, okId) {
  clear(box);
  try {
    const value = await fn();
    const text = typeof okText === "function" ? okText(value) : okText;
    if (text) box.append(message("ok", text, okId));
    return value;
  } catch (err) {
    box.append(message("error", errorText(err), okId ? `${okId}-error` : "msg-error"));
    return undefined;
  }
}

// "a, b c" -> ["a", "b", "c"]
export function words(text) {
  return text.split(/[,\s]+/).map((x) => x.trim()).filter(Boolean);
}

export function badge(status, label) {
  return h("span", { class: `badge ${status}` }, label || status);
}

export function muted(text, testid) {
  return h("p", { class: "muted", "data-testid": testid }, text);
}

// An ISO time from a datetime-local input, or null when empty.
export function isoOrNull(value) {
  return value ? new Date(value).toISOString() : null;
}

export function yesNo(v) {
  return v ? t("adminAcc.yes") : t("adminAcc.no");
}
