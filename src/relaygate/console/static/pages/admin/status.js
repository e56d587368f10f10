// Admin: system status. Requests, errors and latency per minute over the last hour or per
// hour over the last day, each busy channel's success rate over the same time, and what the
// gateway sees now (requests in flight, channel statuses, circuits), from
// GET /admin/api/status/series; refreshed every 15 s while the page is open.
import { adminApi } from "../../api.js";
import { chart } from "../../charts.js";
import { clear, h, message } from "../../dom.js";
import { t } from "../../i18n.js";
import { badge, errorLine, every, table } from "./ops-kit.js";

const REFRESH_MS = 15_000;

function label(iso, window) {
  const d = new Date(iso);
  const hh = String(d.getHours()).padStart(2, "0");
  const mm = String(d.getMinutes()).padStart(2, "0");
  return window === "24h" ? `${hh}:00` : `${hh}:${mm}`;
}

function sum(values) {
  return values.reduce((a, b) => a + (b || 0), 0);
}

function stat(name, value, testid) {
  return h("div", { class: "card stat" }, h("div", { class: "label" }, name),
    h("div", { class: "value", "data-testid": testid }, value));
}

function chartCard(title, draw) {
  const canvas = h("canvas", { role: "img", "aria-label": title });
  const card = h("div", { class: "card" }, h("h2", {}, title), h("div", { class: "chart-box" }, canvas));
  return [card, () => draw(canvas)];
}

export async function render(ctx, root) {
  let win = "1h";
  const body = h("div");
  const updated = h("span", { class: "muted", "data-testid": "status-updated" });
  const buttons = {};
  for (const w of ["1h", "24h"]) {
    buttons[w] = h("button", { type: "button", "data-testid": `status-window-${w}`,
      onclick: () => pick(w) }, t(`ops.st.window.${w}`));
  }

  function draw(data) {
    const s = data.series;
    const labels = data.times.map((x) => label(x, data.window));
    const requests = sum(s.requests);
    const errors = sum(s.errors);
    const weighted = s.latency_avg_ms.reduce((a, v, i) => a + (v || 0) * s.requests[i], 0);
    const circuits = data.now.circuits;
    const cards = h("div", { class: "grid" },
      stat(t("ops.st.requests"), String(requests), "status-requests"),
      stat(t("ops.st.errors"), String(errors), "status-errors"),
      stat(t("ops.st.errorRate"), requests ? `${((100 * errors) / requests).toFixed(1)}%` : "—", "status-error-rate"),
      stat(t("ops.st.latency"), requests ? `${Math.round(weighted / requests)} ms` : "—", "status-latency"),
      stat(t("ops.st.inflight"), `${data.now.inflight} / ${data.now.max_inflight}`, "status-inflight"),
      stat(t("ops.st.openCircuits"), String(circuits.filter((c) => c.state !== "closed").length), "status-circuits"));
    const charts = [
      chartCard(t("ops.st.trafficChart"), (canvas) => chart(canvas, "bar", labels, [
        { label: t("ops.st.ok"), data: s.requests.map((n, i) => n - s.errors[i]) },
        { label: t("ops.st.errors"), data: s.errors },
      ], { stacked: true, yTitle: t("ops.st.requests") })),
      chartCard(t("ops.st.latencyChart"), (canvas) => chart(canvas, "line", labels, [
        { label: t("ops.st.latencyAvg"), data: s.latency_avg_ms },
        { label: t("ops.st.latencyMax"), data: s.latency_max_ms },
      ], { yTitle: "ms" })),
    ];
    if (data.channels.length) {
      charts.push(chartCard(t("ops.st.healthChart"), (canvas) => chart(canvas, "line", labels,
        data.channels.map((c) => ({
          label: c.name || `#${c.channel_id}`,
          data: c.requests.map((n, i) => (n ? Math.round((1000 * (n - c.errors[i])) / n) / 10 : null)),
        })), { yTitle: "%" })));
    }
    const byChannel = new Map();
    for (const c of circuits) {
      if (c.state !== "closed") byChannel.set(c.channel_id, [...(byChannel.get(c.channel_id) || []), c]);
    }
    const channelRows = data.now.channels.map((c) => {
      const open = byChannel.get(c.id) || [];
      const kind = c.status === "enabled" ? "active" : c.status === "auto_disabled" ? "error" : "";
      return h("tr", { "data-testid": `status-channel-${c.id}` },
        h("td", {}, c.name),
        h("td", {}, badge(kind, t(`ops.ch.status.${c.status}`))),
        h("td", { class: "wrap" }, open.length
          ? open.map((x) => `${x.model || t("ops.ch.wholeChannel")}: ${t(`ops.ch.circuit.${x.state}`)}`).join(", ")
          : badge("ok", t("ops.ch.circuit.closed"))));
    });
    clear(body).append(cards, ...charts.map(([card]) => card),
      h("div", { class: "card" }, h("h2", {}, t("ops.st.channelsNow")),
        channelRows.length ? table("status-channels", [t("ops.ch.name"), t("common.status"), t("ops.ch.circuit")],
          channelRows) : h("p", { class: "muted" }, t("ops.ch.none"))));
    for (const [, drawChart] of charts) drawChart();
    updated.textContent = t("ops.updatedAt", { time: new Date().toLocaleTimeString() });
  }

  async function load() {
    const data = (await adminApi("GET", `/status/series?window=${win}`)).data;
    draw(data);
  }

  async function pick(w) {
    win = w;
    for (const [k, b] of Object.entries(buttons)) b.className = k === w ? "" : "secondary";
    try {
      await load();
    } catch (err) {
      clear(body).append(message("error", errorLine(err)));
    }
  }

  root.append(h("h1", {}, t("nav.adminStatus")),
    h("div", { class: "row tabs" }, buttons["1h"], buttons["24h"], updated),
    body);
  buttons["24h"].className = "secondary";
  await load();
  every(root, REFRESH_MS, load);
}
