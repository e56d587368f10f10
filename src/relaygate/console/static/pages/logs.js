// The user's own request log: newest first, filtered by model, paged by cursor.
import { api, modelNames } from "../api.js";
import { clear, field, formatTime, h, message } from "../dom.js";
import { errorText, t } from "../i18n.js";

function row(r) {
  const ok = r.status < 400;
  return h("tr", { "data-testid": "log-row" },
    h("td", {}, formatTime(r.created_at)),
    h("td", { "data-testid": "log-model" }, r.model || "—"),
    h("td", {}, r.endpoint),
    h("td", {}, h("span", { class: `badge ${ok ? "ok" : "error"}` }, String(r.status)),
      r.error_code ? ` ${r.error_code}` : ""),
    h("td", {}, String(r.prompt_tokens)),
    h("td", {}, String(r.completion_tokens)),
    h("td", { "data-testid": "log-cost" }, r.cost),
    h("td", {}, `${r.latency_ms} ms`),
    h("td", {}, r.key_id === null ? "—" : String(r.key_id)));
}

export async function render(ctx, root) {
  const models = await modelNames();
  const model = h("input", { name: "model", list: "log-models", "data-testid": "log-filter-model",
    placeholder: t("logs.anyModel") });
  const datalist = h("datalist", { id: "log-models" }, models.map((m) => h("option", { value: m })));
  const body = h("tbody");
  const more = h("button", { class: "secondary", type: "button", hidden: true, "data-testid": "log-more" }, t("logs.more"));
  const status = h("div");
  const exportLink = h("a", { href: "/console/api/logs.csv", download: "requests.csv", "data-testid": "log-export" },
    t("logs.export"));
  let cursor = null;

  async function fetchPage(reset) {
    const params = new URLSearchParams({ limit: "50" });
    if (model.value.trim()) params.set("model", model.value.trim());
    if (!reset && cursor) params.set("cursor", cursor);
    const only = new URLSearchParams();
    if (params.has("model")) only.set("model", params.get("model"));
    exportLink.href = `/console/api/logs.csv${only.toString() ? `?${only}` : ""}`;
    clear(status);
    try {
      const page = await api("GET", `/logs?${params}`);
      if (reset) clear(body);
      body.append(...page.data.map(row));
      cursor = page.next_cursor;
      more.hidden = !cursor;
      if (reset && !page.data.length) status.append(h("p", { class: "muted", "data-testid": "no-logs" }, t("logs.none")));
    } catch (err) {
      status.append(message("error", errorText(err)));
    }
  }

  const form = h("form", { class: "row", "data-testid": "log-filter" },
    field(t("logs.model"), model), datalist,
    h("button", { type: "submit", "data-testid": "log-apply" }, t("logs.filter")), exportLink);
  form.addEventListener("submit", (e) => { e.preventDefault(); fetchPage(true); });
  more.addEventListener("click", () => fetchPage(false));

  root.append(h("h1", {}, t("nav.logs")),
    h("div", { class: "card" }, form),
    h("div", { class: "card" }, status,
      h("div", { class: "table-wrap" }, h("table", { "data-testid": "log-table" },
        h("thead", {}, h("tr", {}, [t("logs.time"), t("logs.model"), t("logs.endpoint"), t("common.status"),
          t("logs.prompt"), t("logs.completion"), t("logs.cost"), t("logs.latency"), t("logs.key")].map((x) => h("th", {}, x)))),
        body)),
      more));
  await fetchPage(true);
}
