// The public model and price catalogue (GET /v1/pricing: the models an enabled channel serves).
import { clear, h, message } from "../dom.js";
import { t } from "../i18n.js";

async function catalogue(per) {
  const response = await fetch(`/v1/pricing?per=${per}`, { headers: { Accept: "application/json" } });
  const body = await response.json();
  if (!response.ok) throw new Error((body.error && body.error.message) || `HTTP ${response.status}`);
  return body;
}

export async function render(ctx, root) {
  const per = h("select", { "data-testid": "price-per" },
    h("option", { value: "1k" }, t("models.per1k")), h("option", { value: "1m" }, t("models.per1m")));
  const filter = h("input", { type: "search", placeholder: t("models.search"), "data-testid": "model-search" });
  const box = h("div");
  let rows = [];
  let currency = "";

  function draw() {
    const q = filter.value.trim().toLowerCase();
    const shown = rows.filter((m) => !q || m.model.toLowerCase().includes(q) || (m.provider || "").toLowerCase().includes(q));
    clear(box);
    if (!shown.length) {
      box.append(h("p", { class: "muted" }, t("models.none")));
      return;
    }
    box.append(h("div", { class: "table-wrap" }, h("table", { "data-testid": "model-table" },
      h("thead", {}, h("tr", {}, [t("logs.model"), t("models.provider"), t("models.input"), t("models.output"),
        t("models.context"), t("models.description")].map((x) => h("th", {}, x)))),
      h("tbody", {}, shown.map((m) => h("tr", { "data-testid": "model-row" },
        h("td", {}, m.model), h("td", {}, m.provider || ""),
        h("td", {}, m.input_price === null ? "—" : `${m.input_price} ${currency}`),
        h("td", {}, m.output_price === null ? "—" : `${m.output_price} ${currency}`),
        h("td", {}, m.context_window ? String(m.context_window) : "—"),
        h("td", {}, m.description || "")))))));
  }

  async function load() {
    try {
      const body = await catalogue(per.value);
      rows = body.data || [];
      currency = body.currency || "";
      draw();
    } catch (err) {
      clear(box).append(message("error", err.message));
    }
  }

  per.addEventListener("change", load);
  filter.addEventListener("input", draw);
  root.append(h("h1", {}, t("nav.models")),
    h("div", { class: "card" }, h("div", { class: "row" }, filter, per), box));
  await load();
}
