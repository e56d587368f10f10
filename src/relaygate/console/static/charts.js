// Charts, drawn by the vendored Chart.js (vendor/chartjs, loaded by index.html as a classic
// script: window.Chart). Colours follow the page's theme; a chart is destroyed with its canvas
// when the page is left (see track()).
const PALETTE = ["#2563eb", "#16a34a", "#f59e0b", "#dc2626", "#7c3aed", "#0891b2", "#db2777",
  "#65a30d", "#ea580c", "#475569"];
const live = new Set();

export function colour(i) {
  return PALETTE[i % PALETTE.length];
}

function track(chart) {
  for (const old of live) {
    if (!old.canvas || !old.canvas.isConnected) {
      old.destroy();
      live.delete(old);
    }
  }
  live.add(chart);
  return chart;
}

export function available() {
  return typeof window.Chart === "function";
}

// kind: "bar" | "line"; labels: x values; series: [{ label, data }]; options: { stacked, yTitle }
export function chart(canvas, kind, labels, series, options = {}) {
  if (!available()) return null;
  const datasets = series.map((s, i) => ({
    label: s.label,
    data: s.data,
    backgroundColor: colour(i),
    borderColor: colour(i),
    borderWidth: kind === "line" ? 2 : 0,
    pointRadius: kind === "line" ? 1.5 : 0,
    tension: 0.25,
    fill: false,
  }));
  const stacked = Boolean(options.stacked);
  return track(new window.Chart(canvas, {
    type: kind,
    data: { labels, datasets },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      interaction: { mode: "index", intersect: false },
      plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
      scales: {
        x: { stacked, ticks: { maxRotation: 0, autoSkip: true } },
        y: { stacked, beginAtZero: true, title: { display: Boolean(options.yTitle), text: options.yTitle || "" } },
      },
    },
  }));
}
