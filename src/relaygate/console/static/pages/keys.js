// Keys: create (the key is shown once, with a copy button), list, revoke.
import { api, modelNames } from "../api.js";
import { clear, field, formatTime, h, message } from "../dom.js";
import { errorText, t } from "../i18n.js";

function optionalInt(input) {
  const v = input.value.trim();
  return v === "" ? undefined : Number(v);
}

async function copy(text, button) {
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = t("keys.copied");
  } catch {
    button.textContent = t("keys.copyManually");
  }
}

function shownOnce(created) {
  const secret = h("div", { class: "secret", "data-testid": "new-key" }, created.key);
  const button = h("button", { type: "button", "data-testid": "copy-key" }, t("keys.copy"));
  button.addEventListener("click", () => copy(created.key, button));
  return h("div", { class: "card", "data-testid": "key-created" },
    h("h2", {}, t("keys.createdTitle", { name: created.name || created.key_hint })),
    message("ok", t("keys.shownOnce")),
    secret,
    h("div", { class: "row" }, button));
}

function keyRow(k, onRevoke) {
  const revoke = k.status === "revoked" ? "" :
    h("button", { class: "danger", "data-testid": `revoke-${k.id}`, onclick: () => onRevoke(k) }, t("keys.revoke"));
  return h("tr", { "data-testid": `key-${k.id}` },
    h("td", {}, k.name || "—"),
    h("td", { class: "secret-hint" }, k.key_hint),
    h("td", {}, t(`keys.kind.${k.kind}`)),
    h("td", {}, h("span", { class: `badge ${k.status}` }, t(`keys.status.${k.status}`))),
    h("td", {}, k.models ? k.models.join(", ") : t("keys.allModels")),
    h("td", {}, k.expires_at ? formatTime(k.expires_at) : t("dash.never")),
    h("td", {}, formatTime(k.created_at)),
    h("td", {}, revoke));
}

export async function render(ctx, root) {
  const models = await modelNames();
  const name = h("input", { name: "name", maxlength: 128, "data-testid": "key-name" });
  const kind = h("select", { name: "kind", "data-testid": "key-kind" },
    h("option", { value: "api" }, t("keys.kind.api")),
    h("option", { value: "personal" }, t("keys.kind.personal")));
  const modelList = h("input", { name: "models", list: "model-names", placeholder: t("keys.modelsHint"),
    "data-testid": "key-models" });
  const datalist = h("datalist", { id: "model-names" }, models.map((m) => h("option", { value: m })));
  const expires = h("input", { name: "expires", type: "datetime-local", "data-testid": "key-expires" });
  const rpm = h("input", { name: "rpm", type: "number", min: 1, "data-testid": "key-rpm" });
  const tpm = h("input", { name: "tpm", type: "number", min: 1 });
  const conc = h("input", { name: "concurrency", type: "number", min: 1 });
  const spend = h("input", { name: "spend", inputmode: "decimal", "data-testid": "key-spend" });
  const created = h("div");
  const listBox = h("div");
  const form = h("form", { class: "stack", "data-testid": "key-form" },
    h("div", { class: "row" }, field(t("keys.name"), name), field(t("keys.kind"), kind)),
    h("div", { class: "row" }, field(t("keys.models"), modelList), field(t("keys.expires"), expires)),
    h("div", { class: "row" }, field(t("keys.rpm"), rpm), field(t("keys.tpm"), tpm),
      field(t("keys.concurrency"), conc), field(t("keys.spend"), spend)),
    datalist,
    h("div", { class: "row" }, h("button", { type: "submit", "data-testid": "create-key" }, t("keys.create"))));

  async function load() {
    const keys = await api("GET", "/keys");
    clear(listBox);
    if (!keys.length) {
      listBox.append(h("p", { class: "muted" }, t("keys.none")));
      return;
    }
    listBox.append(h("div", { class: "table-wrap" }, h("table", { "data-testid": "key-list" },
      h("thead", {}, h("tr", {}, [t("keys.name"), t("keys.hint"), t("keys.kind"), t("common.status"),
        t("keys.models"), t("keys.expires"), t("keys.created"), ""].map((x) => h("th", {}, x)))),
      h("tbody", {}, keys.map((k) => keyRow(k, revoke))))));
  }

  async function revoke(k) {
    if (!confirm(t("keys.revokeConfirm", { name: k.name || k.key_hint }))) return;
    try {
      await api("DELETE", `/keys/${k.id}`);
      await load();
    } catch (err) {
      listBox.prepend(message("error", errorText(err)));
    }
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clear(created);
    const body = { name: name.value.trim(), kind: kind.value };
    const picked = modelList.value.split(/[,\s]+/).filter(Boolean);
    if (picked.length) body.models = picked;
    if (expires.value) body.expires_at = new Date(expires.value).toISOString();
    const limits = { rpm_limit: optionalInt(rpm), tpm_limit: optionalInt(tpm), concurrency_limit: optionalInt(conc) };
    for (const [k, v] of Object.entries(limits)) if (v !== undefined) body[k] = v;
    if (spend.value.trim()) body.spend_limit = spend.value.trim();
    try {
      const made = await api("POST", "/keys", body);
      created.append(shownOnce(made));
      form.reset();
      await load();
    } catch (err) {
      created.append(message("error", errorText(err)));
    }
  });

  root.append(h("h1", {}, t("nav.keys")),
    h("div", { class: "card" }, h("h2", {}, t("keys.new")), form),
    created,
    h("div", { class: "card" }, h("h2", {}, t("keys.yours")), listBox));
  await load();
}
