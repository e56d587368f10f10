// Runtime settings (admin): the envelope, OpenAI's error statuses, console sign-up and the
// USD exchange rate, changed without a restart (GET/PATCH /admin/api/settings). Each shows
// its current value, the environment's default and whether an admin overrode it; a reset
// brings back the default. Every worker applies a change within the refresh interval.
import { adminApi } from "../../api.js";
import { clear, formatTime, h, message } from "../../dom.js";
import { errorText, t } from "../../i18n.js";

const FLAGS = ["envelope", "openai_status_codes", "console_signup"];

function shownValue(name, value) {
  if (FLAGS.includes(name)) return value ? t("extras.set.on") : t("extras.set.off");
  return String(value);
}

function control(f) {
  if (FLAGS.includes(f.name)) {
    return h("select", { "data-testid": `setting-${f.name}`, name: f.name },
      h("option", { value: "true", selected: f.value === true }, t("extras.set.on")),
      h("option", { value: "false", selected: f.value === false }, t("extras.set.off")));
  }
  return h("input", { "data-testid": `setting-${f.name}`, name: f.name, value: String(f.value),
    inputmode: "decimal", autocomplete: "off", maxlength: 32 });
}

function read(name, input) {
  return FLAGS.includes(name) ? input.value === "true" : input.value.trim();
}

export async function render(ctx, root) {
  const box = h("div");
  const status = h("div");
  root.append(h("h1", {}, t("nav.adminSettings")),
    h("p", { class: "muted" }, t("extras.set.intro")), status, box);

  async function load() {
    const answer = await adminApi("GET", "/settings");
    show(answer.data || []);
  }

  async function change(body, done) {
    clear(status);
    try {
      const answer = await adminApi("PATCH", "/settings", body);
      show(answer.data || []);
      status.append(message("ok", done, "settings-saved"));
    } catch (err) {
      status.append(message("error", errorText(err), "settings-error"));
    }
  }

  function show(fields) {
    const inputs = {};
    const rows = fields.map((f) => {
      const input = control(f);
      inputs[f.name] = { input, field: f };
      const origin = f.overridden
        ? h("span", { class: "badge active", "data-testid": `overridden-${f.name}` },
          t("extras.set.overridden"))
        : h("span", { class: "badge", "data-testid": `default-${f.name}` }, t("extras.set.default"));
      const reset = f.overridden
        ? h("button", { type: "button", class: "secondary", "data-testid": `reset-${f.name}`,
          onclick: () => {
            if (confirm(t("extras.set.resetConfirm", { name: t(`extras.set.name.${f.name}`) }))) {
              change({ [f.name]: null }, t("extras.set.resetDone"));
            }
          } }, t("extras.set.reset"))
        : "";
      const by = f.overridden && f.updated_at
        ? t("extras.set.changedBy", { who: f.updated_by || "?", when: formatTime(f.updated_at) })
        : "";
      return h("div", { class: "card", "data-testid": `setting-card-${f.name}` },
        h("h2", {}, t(`extras.set.name.${f.name}`), " ", origin),
        h("p", { class: "muted" }, t(`extras.set.help.${f.name}`)),
        h("div", { class: "row" }, h("label", {}, t("extras.set.value"), input), reset),
        h("p", { class: "muted" },
          t("extras.set.defaultIs", { value: shownValue(f.name, f.default), env: f.env }),
          by ? ` · ${by}` : ""));
    });
    const save = h("button", { type: "submit", "data-testid": "save-settings" }, t("extras.set.save"));
    const form = h("form", { class: "stack", "data-testid": "settings-form" }, rows, h("div", { class: "row" }, save));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const body = {};
      for (const [name, { input, field }] of Object.entries(inputs)) {
        const value = read(name, input);
        if (value !== field.value) body[name] = value;
      }
      if (!Object.keys(body).length) {
        clear(status).append(message("ok", t("extras.set.nothing"), "settings-nothing"));
        return;
      }
      change(body, t("extras.set.saved"));
    });
    clear(box).append(form);
  }

  await load();
}
