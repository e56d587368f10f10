// Small helpers shared by the admin operations pages (channels, prices, status).
import { h } from "../../dom.js";
import { errorText } from "../../i18n.js";

// An error of the admin API as one line: the message in the user's language when the
// dictionary knows the code, with the field it names (e.g. prices[3].input).
export function errorLine(err) {
  const text = errorText(err);
  return err && err.param && !text.includes(err.param) ? `${text} (${err.param})` : text;
}

// Runs fn every `ms` while `root` is in the page; stops by itself once the page is left
// (the router replaces the content) and returns a function that stops it at once.
export function every(root, ms, fn) {
  let busy = false;
  const id = setInterval(async () => {
    if (!root.isConnected) {
      clearInterval(id);
      return;
    }
    if (busy || document.hidden) return;
    busy = true;
    try {
      await fn();
    } catch {
      /* the next round tries again */
    } finally {
      busy = false;
    }
  }, ms);
  return () => clearInterval(id);
}

// Words separated by commas, spaces or new lines, without empties or repeats.
export function words(text) {
  return [...new Set(String(text || "").split(/[\s,，]+/).map((w) => w.trim()).filter(Boolean))];
}

export function badge(kind, text, testid) {
  return h("span", { class: `badge ${kind}`, "data-testid": testid }, text);
}

// A <select> of [value, label] pairs.
export function select(attrs, pairs, selected) {
  return h("select", attrs,
    pairs.map(([value, label]) => h("option", { value, selected: value === selected }, label)));
}

export function table(testid, headers, rows) {
  return h("div", { class: "table-wrap" }, h("table", { "data-testid": testid },
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", {}, x)))),
    h("tbody", {}, rows)));
}
