// Balance, usage this month, the last 30 days as charts (cost or tokens per day by model,
// requests per day) and the packages with what is left of them.
import { api } from "../api.js";
import { available, chart } from "../charts.js";
import { clear, formatTime, h } from "../dom.js";
import { t } from "../i18n.js";

// the most models drawn one by one; the rest are summed as "other"
const MAX_SERIES = 8;

function stat(label, value, testid) {
  return h("div", { class: "card stat" },
    h("div", { class: "label" }, label),
    h("div", { class: "value", "data-testid": testid }, value));
}

function remaining(p) {
  if (p.remaining === null || p.remaining === undefined) return t("dash.unlimited");
  return p.kind === "counts" ? t("dash.countsLeft", { n: p.remaining }) : String(p.remaining);
}

// every UTC day from start to end (YYYY-MM-DD), inclusive
export function daysBetween(start, end) {
  const out = [];
  const day = new Date(`${start}T00:00:00Z`);
  const last = new Date(`${end}T00:00:00Z`);
  if (isNaN(day) || isNaN(last)) return out;
  while (day <= last && out.length < 400) {
    out.push(day.toISOString().slice(0, 10));
    day.setUTCDate(day.getUTCDate() + 1);
  }
  return out;
}

const METRICS = {
  cost: (r) => Number(r.cost_units || 0) / 1e6,
  tokens: (r) => Number(r.prompt_tokens || 0) + Number(r.completion_tokens || 0),
  requests: (r) => Number(r.requests || 0),
};

// { labels, days, series: { metric: [{ label, data }] } }: one value per day for each model
// (days without use are zero), the biggest models first, the rest summed as "other"
export function shape(usage) {
  const days = daysBetween(usage.start, usage.end);
  const index = new Map(days.map((d, i) => [d, i]));
  const byModel = new Map();
  for (const row of usage.data || []) {
    const i = index.get(String(row.day).slice(0, 10));
    if (i === undefined) continue;
    const name = row.model || t("extras.dash.noModel");
    if (!byModel.has(name)) byModel.set(name, { cost: 0, rows: [] });
    const entry = byModel.get(name);
    entry.cost += METRICS.cost(row) + METRICS.tokens(row) / 1e9;
    entry.rows.push([i, row]);
  }
  const ranked = [...byModel.entries()].sort((a, b) => b[1].cost - a[1].cost);
  const shown = ranked.slice(0, MAX_SERIES);
  const rest = ranked.slice(MAX_SERIES);
  const series = {};
  for (const [metric, value] of Object.entries(METRICS)) {
    const lines = shown.map(([name, entry]) => {
      const data = days.map(() => 0);
      for (const [i, row] of entry.rows) data[i] += value(row);
      return { label: name, data };
    });
    if (rest.length) {
      const data = days.map(() => 0);
      for (const [, entry] of rest) for (const [i, row] of entry.rows) data[i] += value(row);
      lines.push({ label: t("extras.dash.other"), data });
    }
    series[metric] = lines;
  }
  return { days, labels: days.map((d) => d.slice(5)), series };
}

function usageCard(usage, currency) {
  const card = h("div", { class: "card", "data-testid": "usage-card" },
    h("h2", {}, t("extras.dash.title")));
  const totals = usage.totals || {};
  const tokens = Number(totals.prompt_tokens || 0) + Number(totals.completion_tokens || 0);
  card.append(h("p", { class: "muted", "data-testid": "usage-totals" },
    t("extras.dash.totals", { requests: totals.requests || 0, tokens, cost: totals.cost || "0", currency })));
  if (!(usage.data || []).length) {
    card.append(h("p", { class: "muted", "data-testid": "no-usage" }, t("extras.dash.none")));
    return card;
  }
  if (!available()) {
    card.append(h("p", { class: "muted", "data-testid": "no-charts" }, t("extras.dash.noCharts")));
    return card;
  }
  const shaped = shape(usage);
  const mainCanvas = h("canvas", { "data-testid": "usage-chart", role: "img",
    "aria-label": t("extras.dash.title") });
  const requestCanvas = h("canvas", { "data-testid": "requests-chart", role: "img",
    "aria-label": t("extras.dash.requests") });
  let metric = "cost";
  const buttons = {};
  const draw = () => {
    const old = window.Chart.getChart(mainCanvas);
    if (old) old.destroy();
    const yTitle = metric === "cost" ? currency : t("extras.dash.tokens");
    chart(mainCanvas, "bar", shaped.labels, shaped.series[metric], { stacked: true, yTitle });
    for (const [name, button] of Object.entries(buttons)) {
      button.className = name === metric ? "" : "secondary";
      button.setAttribute("aria-pressed", String(name === metric));
    }
  };
  for (const name of ["cost", "tokens"]) {
    buttons[name] = h("button", { type: "button", "data-testid": `usage-metric-${name}`,
      onclick: () => { metric = name; draw(); } }, t(`extras.dash.${name}`));
  }
  card.append(
    h("div", { class: "tabs", role: "group", "aria-label": t("extras.dash.metric") },
      buttons.cost, buttons.tokens),
    h("div", { class: "chart-box" }, mainCanvas),
    h("h2", {}, t("extras.dash.requests")),
    h("div", { class: "chart-box" }, requestCanvas),
    h("p", { class: "muted" }, t("extras.dash.lag")),
  );
  // drawn once the canvases are in the page (Chart.js sizes them from their box)
  queueMicrotask(() => {
    draw();
    chart(requestCanvas, "bar", shaped.labels, shaped.series.requests,
      { stacked: true, yTitle: t("extras.dash.requestsAxis") });
  });
  return card;
}

export async function render(ctx, root) {
  const [acc, usage] = await Promise.all([
    api("GET", "/account"),
    api("GET", "/usage/daily?group_by=model").catch(() => null),
  ]);
  const cur = acc.currency;
  root.append(
    h("h1", {}, t("nav.dashboard")),
    h("div", { class: "grid" },
      stat(t("dash.balance"), `${acc.balance} ${cur}`, "balance"),
      stat(t("dash.usedThisMonth"), `${acc.usage_this_month.cost} ${cur}`, "used-month"),
      stat(t("dash.packages"), String(acc.packages.length), "package-count")),
  );
  const usageBox = h("div");
  root.append(usageBox);
  if (usage) clear(usageBox).append(usageCard(usage, cur));
  const card = h("div", { class: "card" }, h("h2", {}, t("dash.packages")));
  if (!acc.packages.length) {
    card.append(h("p", { class: "muted", "data-testid": "no-packages" }, t("dash.noPackages")));
  } else {
    card.append(h("div", { class: "table-wrap" }, h("table", { "data-testid": "packages" },
      h("thead", {}, h("tr", {},
        [t("dash.plan"), t("dash.kind"), t("dash.remaining"), t("dash.periodEnd"), t("dash.expires"), t("common.status")]
          .map((x) => h("th", {}, x)))),
      h("tbody", {}, acc.packages.map((p) => h("tr", {},
        h("td", {}, p.plan_name),
        h("td", {}, t(`dash.kind.${p.kind}`)),
        h("td", {}, remaining(p)),
        h("td", {}, formatTime(p.period_end)),
        h("td", {}, p.expires_at ? formatTime(p.expires_at) : t("dash.never")),
        h("td", {}, h("span", { class: `badge ${p.status}` }, p.status))))))));
  }
  root.append(card,
    h("p", {}, h("a", { href: "#/keys" }, t("dash.toKeys")), " · ",
      h("a", { href: "#/quickstart" }, t("nav.quickstart"))));
}
