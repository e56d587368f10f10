// Admin: channels. The list with status, models, priority/weight, circuits (refreshed every
// 10 s while the page is open), a Test button (latency and result), enable/disable, delete;
// create and edit from the channel-type catalogue. Upstream keys are write-only: the form
// never shows them, and an empty keys field on edit keeps the stored ones.
import { adminApi } from "../../api.js";
import { clear, field, h, message } from "../../dom.js";
import { currentLanguage, t } from "../../i18n.js";
import { badge, errorLine, every, select, table, words } from "./ops-kit.js";

const REFRESH_MS = 10_000;

function typeLabel(type) {
  return currentLanguage() === "zh-CN" && type.label_zh ? type.label_zh : type.label;
}

function typeOf(types, channel) {
  return types.find((x) => x.provider === channel.provider && x.profile === channel.profile)
    || types.find((x) => x.provider === channel.provider) || null;
}

// A config value typed into the form: JSON objects, arrays, booleans and numbers are read
// as JSON (a number stays text when the stored value was text); anything else is text.
function configValue(text, old) {
  const v = text.trim();
  if (/^[[{]/.test(v) || v === "true" || v === "false" || (/^-?\d+(\.\d+)?$/.test(v) && typeof old !== "string")) {
    try {
      return JSON.parse(v);
    } catch {
      return v;
    }
  }
  return v;
}

function shown(value) {
  if (value === undefined || value === null) return "";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

// The worst circuit of a channel: open > half_open > closed (none tracked: closed).
function circuitOf(circuits, id) {
  const mine = circuits.filter((c) => c.channel_id === id);
  for (const state of ["open", "half_open"]) {
    const hit = mine.filter((c) => c.state === state);
    if (hit.length) return { state, models: hit.map((c) => c.model || t("ops.ch.wholeChannel")) };
  }
  return { state: "closed", models: [] };
}

function channelForm(types, channel, done) {
  const editing = Boolean(channel);
  const box = h("div", { class: "card", "data-testid": "channel-form-card" });
  let type = editing ? typeOf(types, channel) : types[0];
  const typeSelect = select(
    { "data-testid": "channel-type", disabled: editing },
    types.map((x) => [x.id, typeLabel(x)]),
    type ? type.id : "",
  );
  const name = h("input", { maxlength: 128, required: true, "data-testid": "channel-name",
    value: editing ? channel.name : "" });
  const baseUrl = h("input", { type: "url", required: true, "data-testid": "channel-base-url",
    value: editing ? channel.base_url : (type && type.base_url) || "" });
  const keys = h("textarea", { rows: 2, autocomplete: "off", spellcheck: "false",
    "data-testid": "channel-keys" });
  const keysHint = h("p", { class: "muted", "data-testid": "channel-keys-hint" });
  const models = h("textarea", { rows: 2, "data-testid": "channel-models",
    value: editing ? channel.models.join(", ") : (type ? type.models.join(", ") : "") });
  const priority = h("input", { type: "number", step: 1, "data-testid": "channel-priority",
    value: editing ? channel.priority : 0 });
  const weight = h("input", { type: "number", min: 0, step: 1, "data-testid": "channel-weight",
    value: editing ? channel.weight : 1 });
  const status = select({ "data-testid": "channel-status" },
    [["enabled", t("ops.ch.status.enabled")], ["disabled", t("ops.ch.status.disabled")]],
    editing && channel.status === "disabled" ? "disabled" : "enabled");
  const force = h("input", { type: "checkbox", "data-testid": "channel-force" });
  const configBox = h("div", { class: "stack" });
  const configInputs = new Map();
  const out = h("div");

  function drawType() {
    clear(configBox);
    configInputs.clear();
    const parts = type ? type.key_parts : ["API key"];
    const format = parts.length > 1 ? t("ops.ch.keysMulti", { format: parts.join("|") }) : t("ops.ch.keysOne");
    keysHint.textContent = editing
      ? `${format} ${t("ops.ch.keysKeep", { count: channel.keys.length })}`
      : format;
    keys.placeholder = parts.join("|");
    if (!type || !type.config.length) return;
    configBox.append(h("div", { class: "muted" }, t("ops.ch.config")));
    for (const c of type.config) {
      const input = h("input", { "data-testid": `channel-config-${c.name}`, placeholder: shown(c.example),
        value: editing ? shown(channel.config[c.name]) : "" });
      configInputs.set(c.name, input);
      configBox.append(field(`${c.name}${c.required ? " *" : ""} — ${c.description}`, input));
    }
  }

  // the upstream's model list (saved channels whose provider lists models): shown, and the
  // new ones added to the form on request (saved with the form)
  const found = h("div", { "data-testid": "channel-discover-box" });
  async function discover() {
    clear(found);
    try {
      const d = (await adminApi("POST", `/channels/${channel.id}/discover-models`, {})).data;
      found.append(message("ok", t("ops.ch.discovered", { count: d.models.length,
        added: d.new.join(", ") || "—", missing: d.missing.join(", ") || "—" }), "channel-discovered"));
      if (d.new.length) {
        found.append(h("button", { type: "button", class: "secondary", "data-testid": "channel-discover-add",
          onclick: () => {
            models.value = [...words(models.value), ...d.new].join(", ");
            clear(found);
          } }, t("ops.ch.discoverAdd", { count: d.new.length })));
      }
    } catch (err) {
      found.append(message("error", errorLine(err), "channel-discover-error"));
    }
  }
  const discoverButton = editing && type && type.discovery
    ? h("button", { type: "button", class: "secondary", "data-testid": "channel-discover", onclick: discover },
      t("ops.ch.discover"))
    : null;

  typeSelect.addEventListener("change", () => {
    type = types.find((x) => x.id === typeSelect.value) || null;
    if (type) {
      baseUrl.value = type.base_url || "";
      models.value = type.models.join(", ");
    }
    drawType();
  });

  const form = h("form", { class: "stack", "data-testid": "channel-form" },
    h("div", { class: "row" }, field(t("ops.ch.type"), typeSelect), field(t("ops.ch.name"), name)),
    field(t("ops.ch.baseUrl"), baseUrl),
    field(t("ops.ch.keys"), keys), keysHint,
    field(t("ops.ch.models"), models),
    discoverButton ? h("div", { class: "row" }, discoverButton) : null, found,
    h("div", { class: "row" }, field(t("ops.ch.priority"), priority), field(t("ops.ch.weight"), weight),
      field(t("common.status"), status)),
    configBox,
    h("label", { class: "check" }, force, t("ops.ch.force")),
    h("div", { class: "row" },
      h("button", { type: "submit", "data-testid": "channel-save" }, editing ? t("ops.save") : t("ops.ch.create")),
      h("button", { type: "button", class: "secondary", "data-testid": "channel-cancel", onclick: () => done(null) },
        t("ops.cancel"))),
    out);

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clear(out);
    const body = {
      name: name.value.trim(),
      base_url: baseUrl.value.trim(),
      models: words(models.value),
      priority: Number(priority.value || 0),
      weight: Number(weight.value || 0),
      status: status.value,
    };
    const config = editing ? { ...channel.config } : {};
    for (const [key, input] of configInputs) {
      if (input.value.trim() === "") delete config[key];
      else config[key] = configValue(input.value, editing ? channel.config[key] : undefined);
    }
    if (!editing || JSON.stringify(config) !== JSON.stringify(channel.config)) body.config = config;
    const lines = keys.value.split(/\n/).map((k) => k.trim()).filter(Boolean);
    if (!editing) {
      body.provider = type.provider;
      body.profile = type.profile;
      body.keys = lines;
    } else if (lines.length) {
      body.keys = lines;
    }
    if (force.checked) body.force = true;
    try {
      const saved = editing
        ? await adminApi("PATCH", `/channels/${channel.id}`, body)
        : await adminApi("POST", "/channels", body);
      keys.value = "";
      done(saved.data);
    } catch (err) {
      out.append(message("error", errorLine(err), "channel-form-error"));
    }
  });

  drawType();
  box.append(h("h2", {}, editing ? t("ops.ch.editTitle", { name: channel.name }) : t("ops.ch.new")), form);
  return box;
}

function testResult(r) {
  if (r === "running") return h("span", { class: "muted" }, t("ops.ch.testing"));
  if (r.ok) return badge("ok", t("ops.ch.testOk", { ms: r.latency_ms }));
  const status = r.status ? `HTTP ${r.status}` : t("ops.ch.noAnswer");
  const why = r.error ? r.error.message || r.error.code : "";
  return h("span", {}, badge("error", t("ops.ch.testFailed", { ms: r.latency_ms, status })),
    h("div", { class: "muted wrap" }, why));
}

export async function render(ctx, root) {
  const types = (await adminApi("GET", "/channel-types")).data;
  const formBox = h("div");
  const note = h("div");
  const listBox = h("div");
  const updated = h("span", { class: "muted", "data-testid": "channels-updated" });
  const tested = new Map();
  let channels = [];
  let circuits = [];

  function row(c) {
    const type = typeOf(types, c);
    const circuit = circuitOf(circuits, c.id);
    const result = tested.get(c.id);
    const kind = c.status === "enabled" ? "active" : c.status === "auto_disabled" ? "error" : "";
    const toggle = c.status === "enabled" ? "disabled" : "enabled";
    return h("tr", { "data-testid": `channel-${c.id}` },
      h("td", {}, h("strong", {}, c.name), h("div", { class: "muted" }, type ? typeLabel(type) : c.provider)),
      h("td", {}, badge(kind, t(`ops.ch.status.${c.status}`), `channel-status-${c.id}`),
        c.status_reason ? h("div", { class: "muted wrap" }, c.status_reason) : null),
      h("td", { class: "wrap" }, c.models.join(", ")),
      h("td", {}, `${c.priority} / ${c.weight}`),
      h("td", {}, badge(circuit.state === "closed" ? "ok" : "error", t(`ops.ch.circuit.${circuit.state}`),
        `channel-circuit-${c.id}`),
        circuit.models.length ? h("div", { class: "muted wrap" }, circuit.models.join(", ")) : null),
      h("td", { "data-testid": `channel-test-result-${c.id}` }, result ? testResult(result) : ""),
      h("td", {}, h("div", { class: "actions" },
        h("button", { class: "secondary", "data-testid": `channel-test-${c.id}`, onclick: () => test(c) },
          t("ops.ch.test")),
        h("button", { class: "secondary", "data-testid": `channel-edit-${c.id}`, onclick: () => edit(c) },
          t("ops.edit")),
        h("button", { class: "secondary", "data-testid": `channel-toggle-${c.id}`,
          onclick: () => setStatus(c, toggle) }, t(`ops.ch.set.${toggle}`)),
        h("button", { class: "danger", "data-testid": `channel-delete-${c.id}`, onclick: () => remove(c) },
          t("ops.delete")))));
  }

  function draw() {
    clear(listBox);
    if (!channels.length) {
      listBox.append(h("p", { class: "muted", "data-testid": "channels-empty" }, t("ops.ch.none")));
      return;
    }
    listBox.append(table("channel-list",
      [t("ops.ch.name"), t("common.status"), t("ops.pr.model"), t("ops.ch.priorityWeight"),
        t("ops.ch.circuit"), t("ops.ch.lastTest"), ""],
      channels.map(row)));
  }

  async function load() {
    const [list, circ] = await Promise.all([
      adminApi("GET", "/channels"),
      adminApi("GET", "/routing/circuits"),
    ]);
    channels = list.data;
    circuits = circ.data;
    updated.textContent = t("ops.updatedAt", { time: new Date().toLocaleTimeString() });
    draw();
  }

  function show(text, kind = "ok") {
    clear(note).append(message(kind, text, kind === "ok" ? "channels-note" : "channels-error"));
  }

  async function test(c) {
    tested.set(c.id, "running");
    draw();
    try {
      // the admin API answers the result itself (not under `data`)
      const r = await adminApi("POST", `/channels/${c.id}/test`, {});
      tested.set(c.id, r.data || r);
    } catch (err) {
      tested.delete(c.id);
      show(errorLine(err), "error");
    }
    draw();
  }

  async function setStatus(c, status) {
    try {
      await adminApi("PATCH", `/channels/${c.id}`, { status });
      show(t(`ops.ch.set.done.${status}`, { name: c.name }));
      await load();
    } catch (err) {
      show(errorLine(err), "error");
    }
  }

  async function remove(c) {
    if (!confirm(t("ops.ch.deleteConfirm", { name: c.name }))) return;
    try {
      await adminApi("DELETE", `/channels/${c.id}`);
      tested.delete(c.id);
      show(t("ops.ch.deleted", { name: c.name }));
      await load();
    } catch (err) {
      show(errorLine(err), "error");
    }
  }

  function closeForm(saved) {
    clear(formBox);
    if (saved) {
      show(t("ops.ch.saved", { name: saved.name }));
      load().catch((err) => show(errorLine(err), "error"));
    }
  }

  function edit(c) {
    clear(formBox).append(channelForm(types, c, closeForm));
    formBox.scrollIntoView({ block: "start" });
  }

  const add = h("button", { "data-testid": "channel-add",
    onclick: () => clear(formBox).append(channelForm(types, null, closeForm)) }, t("ops.ch.add"));
  root.append(h("h1", {}, t("nav.adminChannels")),
    h("div", { class: "row tabs" }, add, updated),
    formBox, note,
    h("div", { class: "card" }, h("h2", {}, t("ops.ch.list")), listBox));
  await load();
  every(root, REFRESH_MS, load);
}
