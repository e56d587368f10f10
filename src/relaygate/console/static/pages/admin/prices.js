// Admin: models and prices. The effective price catalogue (stored rows and the shipped
// defaults), searchable; one price edited in a form (PATCH; a default model gets a stored
// row), a new one added (POST), a stored row removed (back to the default); the bulk import
// (prices-import.js); the model aliases and fallback chains, read only.
import { adminApi } from "../../api.js";
import { clear, field, h, message } from "../../dom.js";
import { t } from "../../i18n.js";
import { importCard } from "./prices-import.js";
import { badge, errorLine, select, table } from "./ops-kit.js";

const SHOWN_MAX = 200;
const EDITABLE = ["provider", "currency", "per", "input", "output", "cached_input", "context_window",
  "max_output", "description"];
const NUMBERS = new Set(["context_window", "max_output"]);

function modelPath(model) {
  return model.split("/").map(encodeURIComponent).join("/");
}

function priceForm(row, currency, done) {
  const editing = Boolean(row);
  const inputs = {};
  const text = (name, attrs = {}) => {
    inputs[name] = h("input", { "data-testid": `price-${name.replace(/_/g, "-")}`,
      value: editing && row[name] !== null && row[name] !== undefined ? String(row[name]) : "", ...attrs });
    return inputs[name];
  };
  const model = h("input", { required: true, maxlength: 128, readonly: editing, "data-testid": "price-model",
    value: editing ? row.model : "" });
  inputs.currency = select({ "data-testid": "price-currency" }, [["CNY", "CNY"], ["USD", "USD"]],
    editing ? row.currency : currency);
  inputs.per = select({ "data-testid": "price-per" },
    [["1m", t("ops.pr.per1m")], ["1k", t("ops.pr.per1k")]], editing ? row.per : "1m");
  const force = h("input", { type: "checkbox", "data-testid": "price-force" });
  const out = h("div");
  const form = h("form", { class: "stack", "data-testid": "price-form" },
    h("div", { class: "row" }, field(t("ops.pr.model"), model), field(t("ops.pr.provider"), text("provider"))),
    h("div", { class: "row" }, field(t("ops.pr.currency"), inputs.currency), field(t("ops.pr.per"), inputs.per)),
    h("div", { class: "row" },
      field(t("ops.pr.input"), text("input", { inputmode: "decimal", required: true })),
      field(t("ops.pr.output"), text("output", { inputmode: "decimal", required: true })),
      field(t("ops.pr.cachedInput"), text("cached_input", { inputmode: "decimal" }))),
    h("div", { class: "row" },
      field(t("ops.pr.contextWindow"), text("context_window", { type: "number", min: 1 })),
      field(t("ops.pr.maxOutput"), text("max_output", { type: "number", min: 1 }))),
    field(t("ops.pr.description"), text("description", { maxlength: 2000 })),
    editing ? null : h("label", { class: "check" }, force, t("ops.pr.force")),
    h("div", { class: "row" },
      h("button", { type: "submit", "data-testid": "price-save" }, t("ops.save")),
      h("button", { type: "button", class: "secondary", "data-testid": "price-cancel", onclick: () => done(null) },
        t("ops.cancel"))),
    out);

  function value(name) {
    const v = inputs[name].value.trim();
    if (v === "") return null;
    return NUMBERS.has(name) ? Number(v) : v;
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clear(out);
    try {
      let saved;
      if (editing) {
        const body = {};
        for (const name of EDITABLE) {
          const v = value(name);
          const old = row[name] === undefined || row[name] === "" ? null : row[name];
          if (v !== old && String(v) !== String(old)) body[name] = v === null && name === "description" ? "" : v;
        }
        if (!Object.keys(body).length) return done(null);
        saved = await adminApi("PATCH", `/prices/${modelPath(row.model)}`, body);
      } else {
        const body = { model: model.value.trim() };
        for (const name of EDITABLE) if (value(name) !== null) body[name] = value(name);
        if (force.checked) body.force = true;
        saved = await adminApi("POST", "/prices", body);
      }
      done(saved.data);
    } catch (err) {
      out.append(message("error", errorLine(err), "price-form-error"));
    }
  });
  return h("div", { class: "card", "data-testid": "price-form-card" },
    h("h2", {}, editing ? t("ops.pr.editTitle", { model: row.model }) : t("ops.pr.new")), form);
}

function routesCard(routes) {
  if (!routes.length) return h("p", { class: "muted", "data-testid": "routes-empty" }, t("ops.rt.none"));
  return table("route-list", [t("ops.rt.name"), t("ops.rt.fallbacks"), t("ops.rt.hedge"), t("ops.pr.description")],
    routes.map((r) => h("tr", { "data-testid": `route-${r.name}` },
      h("td", {}, r.name),
      h("td", { class: "wrap" }, r.fallbacks.length ? r.fallbacks.join(" → ") : "—"),
      h("td", {}, r.hedge_after_ms === null ? "—" : `${r.hedge_after_ms} ms`),
      h("td", { class: "wrap" }, r.description || ""))));
}

export async function render(ctx, root) {
  const formBox = h("div");
  const note = h("div");
  const listBox = h("div");
  const routesBox = h("div");
  const search = h("input", { type: "search", placeholder: t("ops.pr.search"), "data-testid": "price-search" });
  let rows = [];
  let currency = "CNY";

  function show(text, kind = "ok") {
    clear(note).append(message(kind, text, kind === "ok" ? "prices-note" : "prices-error"));
  }

  function row(p) {
    const billed = p.billed || {};
    const entered = `${p.input} / ${p.output} ${p.currency} · ${p.per === "1k" ? t("ops.pr.per1k") : t("ops.pr.per1m")}`;
    return h("tr", { "data-testid": `price-row-${p.model}` },
      h("td", {}, h("strong", {}, p.model), p.description ? h("div", { class: "muted wrap" }, p.description) : null),
      h("td", {}, p.provider || "—"),
      h("td", {}, badge(p.origin === "db" ? "active" : "", t(`ops.pr.origin.${p.origin}`))),
      h("td", { "data-testid": `price-entered-${p.model}` }, entered),
      h("td", { "data-testid": `price-billed-${p.model}` },
        p.billed ? `${billed.input} / ${billed.output} ${billed.currency}` : h("span", { class: "muted" }, p.error || "")),
      h("td", {}, h("div", { class: "actions" },
        h("button", { class: "secondary", "data-testid": `price-edit-${p.model}`, onclick: () => edit(p) }, t("ops.edit")),
        p.origin === "db"
          ? h("button", { class: "danger", "data-testid": `price-delete-${p.model}`, onclick: () => remove(p) },
            t("ops.pr.remove"))
          : null)));
  }

  function draw() {
    clear(listBox);
    const q = search.value.trim().toLowerCase();
    const hits = rows.filter((p) => !q || [p.model, p.provider, p.description].some(
      (x) => String(x || "").toLowerCase().includes(q)));
    listBox.append(h("p", { class: "muted", "data-testid": "price-count" },
      t("ops.pr.count", { shown: Math.min(hits.length, SHOWN_MAX), count: hits.length, currency })));
    if (!hits.length) return;
    listBox.append(table("price-list",
      [t("ops.pr.model"), t("ops.pr.provider"), t("ops.pr.origin"), t("ops.pr.entered"), t("ops.pr.billed"), ""],
      hits.slice(0, SHOWN_MAX).map(row)));
  }

  async function load() {
    const body = await adminApi("GET", "/prices");
    rows = body.data;
    currency = body.currency || currency;
    draw();
  }

  function closeForm(saved) {
    clear(formBox);
    if (saved) {
      show(t("ops.pr.saved", { model: saved.model }));
      search.value = saved.model;
      load().catch((err) => show(errorLine(err), "error"));
    }
  }

  function edit(p) {
    clear(formBox).append(priceForm(p, currency, closeForm));
    formBox.scrollIntoView({ block: "start" });
  }

  async function remove(p) {
    if (!confirm(t("ops.pr.removeConfirm", { model: p.model }))) return;
    try {
      await adminApi("DELETE", `/prices/${modelPath(p.model)}`);
      show(t("ops.pr.removed", { model: p.model }));
      await load();
    } catch (err) {
      show(errorLine(err), "error");
    }
  }

  search.addEventListener("input", draw);
  const add = h("button", { "data-testid": "price-add",
    onclick: () => clear(formBox).append(priceForm(null, currency, closeForm)) }, t("ops.pr.add"));
  root.append(h("h1", {}, t("nav.adminPrices")),
    h("div", { class: "row tabs" }, search, add),
    formBox, note,
    h("div", { class: "card" }, h("h2", {}, t("ops.pr.list")), listBox),
    importCard(load),
    h("div", { class: "card" }, h("h2", {}, t("ops.rt.title")), h("p", { class: "muted" }, t("ops.rt.help")),
      routesBox));
  await load();
  try {
    clear(routesBox).append(routesCard((await adminApi("GET", "/model-routes")).data));
  } catch (err) {
    clear(routesBox).append(message("error", errorLine(err)));
  }
}
