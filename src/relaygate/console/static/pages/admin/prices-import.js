// Admin: the bulk price import (PUT /admin/api/prices, all rows or none). The operator pastes
// CSV (a header row naming the price fields) or JSON (an array of rows, or {"prices": [...]}),
// previews what was read, then applies it; the server checks every row before writing any.
import { adminApi } from "../../api.js";
import { clear, field, h, message } from "../../dom.js";
import { t } from "../../i18n.js";
import { errorLine, table } from "./ops-kit.js";

const INTEGER_FIELDS = new Set(["context_window", "max_output"]);
const JSON_FIELDS = new Set(["image_prices"]);
const PREVIEW_COLUMNS = ["model", "provider", "currency", "per", "input", "output", "cached_input"];

// RFC 4180 CSV: quoted fields may hold commas, quotes ("") and line breaks.
export function parseCsv(text) {
  const rows = [];
  let row = [];
  let cell = "";
  let quoted = false;
  let i = 0;
  const src = text.replace(/^\uFEFF/, "");
  while (i < src.length) {
    const ch = src[i];
    if (quoted) {
      if (ch === '"' && src[i + 1] === '"') { cell += '"'; i += 2; continue; }
      if (ch === '"') { quoted = false; i += 1; continue; }
      cell += ch;
      i += 1;
      continue;
    }
    if (ch === '"' && cell === "") { quoted = true; i += 1; continue; }
    if (ch === ",") { row.push(cell); cell = ""; i += 1; continue; }
    if (ch === "\r" || ch === "\n") {
      row.push(cell);
      rows.push(row);
      row = [];
      cell = "";
      i += ch === "\r" && src[i + 1] === "\n" ? 2 : 1;
      continue;
    }
    cell += ch;
    i += 1;
  }
  if (quoted) throw new Error(t("ops.imp.unclosedQuote"));
  if (cell !== "" || row.length) { row.push(cell); rows.push(row); }
  const lines = rows.filter((r) => r.some((c) => c.trim() !== ""));
  if (lines.length < 2) throw new Error(t("ops.imp.csvNeedsHeader"));
  const header = lines[0].map((c) => c.trim());
  if (!header.includes("model")) throw new Error(t("ops.imp.csvNeedsModel"));
  return lines.slice(1).map((cells, n) => {
    if (cells.length > header.length) throw new Error(t("ops.imp.tooManyCells", { line: n + 2 }));
    const out = {};
    header.forEach((name, j) => {
      const v = (cells[j] ?? "").trim();
      if (v === "" || name === "") return;
      if (INTEGER_FIELDS.has(name) && /^\d+$/.test(v)) out[name] = Number(v);
      else if (JSON_FIELDS.has(name)) {
        try {
          out[name] = JSON.parse(v);
        } catch {
          throw new Error(t("ops.imp.badJsonCell", { line: n + 2, name }));
        }
      } else out[name] = v;
    });
    return out;
  });
}

export function parsePrices(text) {
  const src = text.trim();
  if (!src) throw new Error(t("ops.imp.empty"));
  if (src.startsWith("[") || src.startsWith("{")) {
    let data;
    try {
      data = JSON.parse(src);
    } catch (err) {
      throw new Error(t("ops.imp.badJson", { why: err.message }));
    }
    const rows = Array.isArray(data) ? data : data && data.prices;
    if (!Array.isArray(rows)) throw new Error(t("ops.imp.jsonShape"));
    return rows;
  }
  return parseCsv(src);
}

export function importCard(onApplied) {
  const text = h("textarea", { rows: 8, class: "code", spellcheck: "false", "data-testid": "price-import-text",
    placeholder: "model,provider,currency,per,input,output\ngpt-4o-mini,openai,USD,1m,0.15,0.6" });
  const force = h("input", { type: "checkbox", "data-testid": "price-import-force" });
  const previewBox = h("div", { "data-testid": "price-import-preview-box" });
  const out = h("div");
  let parsed = null;
  const apply = h("button", { type: "button", disabled: true, "data-testid": "price-import-apply" },
    t("ops.imp.apply"));

  function preview() {
    clear(previewBox);
    clear(out);
    parsed = null;
    apply.disabled = true;
    try {
      const rows = parsePrices(text.value);
      if (!rows.length) throw new Error(t("ops.imp.empty"));
      parsed = rows;
    } catch (err) {
      previewBox.append(message("error", err.message, "price-import-parse-error"));
      return;
    }
    const cell = (v) => (v === undefined || v === null ? "" : typeof v === "object" ? JSON.stringify(v) : String(v));
    previewBox.append(
      h("p", { "data-testid": "price-import-count" }, t("ops.imp.count", { count: parsed.length })),
      table("price-import-table", ["#", ...PREVIEW_COLUMNS],
        parsed.slice(0, 100).map((r, i) => h("tr", {}, h("td", {}, String(i)),
          PREVIEW_COLUMNS.map((c) => h("td", {}, cell(r[c])))))),
      parsed.length > 100 ? h("p", { class: "muted" }, t("ops.imp.previewCut", { count: parsed.length })) : null);
    apply.disabled = false;
  }

  apply.addEventListener("click", async () => {
    if (!parsed) return;
    clear(out);
    apply.disabled = true;
    try {
      const r = await adminApi("PUT", "/prices", { prices: parsed, force: force.checked });
      out.append(message("ok", t("ops.imp.done", { count: r.count }), "price-import-result"));
      parsed = null;
      await onApplied();
    } catch (err) {
      out.append(message("error", errorLine(err), "price-import-error"));
      apply.disabled = false;
    }
  });

  return h("div", { class: "card" },
    h("h2", {}, t("ops.imp.title")),
    h("p", { class: "muted" }, t("ops.imp.help")),
    h("form", { class: "stack", onsubmit: (e) => e.preventDefault() },
      field(t("ops.imp.text"), text),
      h("label", { class: "check" }, force, t("ops.pr.force")),
      h("div", { class: "row" },
        h("button", { type: "button", class: "secondary", "data-testid": "price-import-preview", onclick: preview },
          t("ops.imp.preview")),
        apply)),
    previewBox, out);
}
