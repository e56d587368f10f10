// Admin: packages and plans. List (optionally with retired plans), create and edit a plan,
// set a counts plan's per-model multipliers, retire or delete a plan, and grant a plan to a
// user (found by name).
import { adminApi, modelNames } from "../../api.js";
import { clear, field, h, message } from "../../dom.js";
import { t } from "../../i18n.js";
import { attempt, badge, button, input, isoOrNull, muted, select, table, words } from "./acc-kit.js";

const KINDS = ["counts", "unlimited", "credit"];
// As the admin API checks a multiplier (services/billing_rules.py): a whole number of
// counts per request, at most this many models in one plan.
const MAX_MULTIPLIER = 1000000;
const MAX_MULTIPLIERS = 1000;
const SHOWN_IN_LIST = 3;

function multEntries(p) {
  return Object.entries(p.model_multipliers || {}).sort(([a], [b]) => a.localeCompare(b));
}

// The list's cell: "gpt-4o ×3, o1 ×10 +2" (every model 1 count when none is set).
function multText(p) {
  if (p.kind !== "counts") return "—";
  const all = multEntries(p);
  if (!all.length) return t("adminPlans.multNone");
  const shown = all.slice(0, SHOWN_IN_LIST).map(([m, n]) => `${m} ×${n}`).join(", ");
  return all.length > SHOWN_IN_LIST ? `${shown} +${all.length - SHOWN_IN_LIST}` : shown;
}

// The page's check of one entry before it is sent (the API checks again): an error text,
// or "" when the entry may be saved.
function multError(p, model, raw) {
  if (!model) return t("adminPlans.multNeedModel");
  if (model.length > 128 || /[\s\x00-\x1f\x7f]/.test(model)) return t("adminPlans.multBadModel");
  if (p.models && !p.models.includes(model)) return t("adminPlans.multNotInPlan", { model });
  if (!/^[0-9]{1,7}$/.test(raw) || Number(raw) < 1 || Number(raw) > MAX_MULTIPLIER) {
    return t("adminPlans.multBadValue", { max: MAX_MULTIPLIER });
  }
  const map = p.model_multipliers || {};
  if (!(model in map) && Object.keys(map).length >= MAX_MULTIPLIERS) {
    return t("adminPlans.multTooMany", { max: MAX_MULTIPLIERS });
  }
  return "";
}

function quotaText(p) {
  if (p.kind === "unlimited") return t("adminPlans.unlimited");
  return p.kind === "credit" ? String(p.quota) : t("adminPlans.counts", { n: p.quota });
}

function intOrNull(el) {
  const v = el.value.trim();
  return v === "" ? null : Number(v);
}

export async function render(ctx, root) {
  const out = h("div");
  const listBox = h("div");
  const listOut = h("div");
  const retired = select("plan-show-retired", [["0", t("adminPlans.hideRetired")], ["1", t("adminPlans.showRetired")]], "0");
  let editing = null;
  let plans = [];
  const catalogue = await modelNames();

  const name = input("plan-name", { maxlength: 64, required: true });
  const kind = select("plan-kind", KINDS.map((k) => [k, t(`adminPlans.kind.${k}`)]), "counts");
  const quota = input("plan-quota", { inputmode: "decimal", placeholder: t("adminPlans.quotaHint") });
  const period = input("plan-period", { type: "number", min: 1, max: 3650, value: "30" });
  const models = input("plan-models", { placeholder: t("adminPlans.modelsHint") });
  const rpm = input("plan-rpm", { type: "number", min: 1 });
  const tpm = input("plan-tpm", { type: "number", min: 1 });
  const daily = input("plan-daily", { type: "number", min: 1 });
  const status = select("plan-status", [["active", t("adminPlans.status.active")], ["disabled", t("adminPlans.status.disabled")]], "active");
  const description = input("plan-description", { maxlength: 256 });
  const title = h("h2", { "data-testid": "plan-form-title" }, t("adminPlans.new"));
  const cancel = button(t("adminAcc.cancel"), "plan-cancel", () => edit(null), "secondary");
  cancel.hidden = true;

  function body() {
    const b = {
      name: name.value.trim(), period_days: Number(period.value || 30), rpm_limit: intOrNull(rpm),
      tpm_limit: intOrNull(tpm), daily_requests: intOrNull(daily), status: status.value,
      description: description.value, models: words(models.value).length ? words(models.value) : null,
    };
    const k = editing ? editing.kind : kind.value;
    if (k === "counts") b.quota = quota.value.trim() === "" ? null : Number(quota.value.trim());
    else if (k === "credit") b.quota = quota.value.trim() || null;
    if (!editing) b.kind = kind.value;
    return b;
  }

  function edit(p) {
    editing = p;
    form.reset();
    title.textContent = p ? t("adminPlans.editing", { name: p.name }) : t("adminPlans.new");
    cancel.hidden = !p;
    kind.disabled = Boolean(p);
    if (!p) return;
    name.value = p.name;
    kind.value = p.kind;
    quota.value = p.quota === null ? "" : String(p.quota);
    period.value = String(p.period_days);
    models.value = p.models ? p.models.join(", ") : "";
    rpm.value = p.rpm_limit ?? "";
    tpm.value = p.tpm_limit ?? "";
    daily.value = p.daily_requests ?? "";
    status.value = p.status === "retired" ? "disabled" : p.status;
    description.value = p.description || "";
    form.scrollIntoView({ block: "start" });
  }

  const form = h("form", { class: "stack", "data-testid": "plan-form" },
    h("div", { class: "row" }, field(t("adminPlans.name"), name), field(t("adminPlans.kind"), kind),
      field(t("adminPlans.quota"), quota), field(t("adminPlans.period"), period)),
    h("div", { class: "row" }, field(t("adminPlans.models"), models), field(t("adminPlans.rpm"), rpm),
      field(t("adminPlans.tpm"), tpm), field(t("adminPlans.daily"), daily)),
    h("div", { class: "row" }, field(t("common.status"), status), field(t("adminPlans.description"), description)),
    h("div", { class: "row" }, h("button", { type: "submit", "data-testid": "plan-save" }, t("adminAcc.save")), cancel));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const done = await attempt(out, () => editing
      ? adminApi("PATCH", `/plans/${editing.id}`, body())
      : adminApi("POST", "/plans", body()), t("adminAcc.saved"), "plan-saved");
    if (done) {
      edit(null);
      await load();
    }
  });

  // grant a plan to a user
  const grantUser = input("grant-user", { maxlength: 64, placeholder: t("adminPlans.userHint") });
  const grantPlan = h("select", { "data-testid": "grant-plan" });
  const grantExpires = input("grant-expires", { type: "datetime-local" });
  const grantOut = h("div");
  const grantForm = h("form", { class: "stack", "data-testid": "grant-form" },
    h("div", { class: "row" }, field(t("adminPlans.user"), grantUser), field(t("adminPlans.plan"), grantPlan),
      field(t("adminPlans.grantExpires"), grantExpires)),
    h("div", { class: "row" }, h("button", { type: "submit", "data-testid": "grant-submit" }, t("adminPlans.grant"))));
  grantForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    await attempt(grantOut, async () => {
      const wanted = grantUser.value.trim();
      const found = (await adminApi("GET", `/users?q=${encodeURIComponent(wanted)}&limit=50`)).data;
      const user = found.find((u) => u.username.toLowerCase() === wanted.toLowerCase() || String(u.id) === wanted);
      if (!user) throw new Error(t("adminPlans.noSuchUser", { name: wanted }));
      const b = { plan_id: Number(grantPlan.value) };
      const exp = isoOrNull(grantExpires.value);
      if (exp) b.expires_at = exp;
      const pkg = (await adminApi("POST", `/users/${user.id}/packages`, b)).data;
      return { user, pkg };
    }, (r) => t("adminPlans.granted", { plan: r.pkg.plan_name, name: r.user.username }), "grant-ok");
  });

  async function remove(p) {
    if (!confirm(t("adminPlans.deleteConfirm", { name: p.name }))) return;
    const r = await attempt(listOut, () => adminApi("DELETE", `/plans/${p.id}`),
      (x) => t(`adminPlans.outcome.${x.data.outcome}`), "plan-deleted");
    if (r) await load(true);
  }

  // ---- a counts plan's per-model multipliers ----
  let multPlan = null;
  const multTitle = h("h2", { "data-testid": "mult-title" });
  const multModel = input("mult-model", { list: "mult-models", maxlength: 128, autocomplete: "off",
    placeholder: t("adminPlans.multModelHint") });
  const multValue = input("mult-value", { inputmode: "numeric", maxlength: 7, placeholder: "2" });
  const multOptions = h("datalist", { id: "mult-models" });
  const multBox = h("div");
  const multOut = h("div");
  const multForm = h("form", { class: "stack", "data-testid": "mult-form" },
    h("div", { class: "row" }, field(t("adminPlans.multModel"), multModel), field(t("adminPlans.multValue"), multValue)),
    multOptions,
    h("div", { class: "row" }, h("button", { type: "submit", "data-testid": "mult-save" }, t("adminPlans.multSave")),
      button(t("adminPlans.multClose"), "mult-close", () => openMult(null), "secondary")));
  const multCard = h("div", { class: "card", "data-testid": "mult-card", hidden: true },
    multTitle, muted(t("adminPlans.multHint")), multBox, multForm, multOut);

  function openMult(p) {
    multPlan = p;
    multCard.hidden = !p;
    clear(multOut);
    if (!p) return;
    multForm.reset();
    clear(multOptions).append(...(p.models || catalogue).map((m) => h("option", { value: m })));
    renderMult();
    multCard.scrollIntoView({ block: "start" });
  }

  function renderMult() {
    const p = multPlan;
    multTitle.textContent = t("adminPlans.multTitle", { name: p.name });
    clear(multBox);
    const all = multEntries(p);
    if (!all.length) return multBox.append(muted(t("adminPlans.multEmpty"), "mult-empty"));
    multBox.append(table("mult-table", [t("adminPlans.multModel"), t("adminPlans.multValue"), ""],
      all.map(([m, n]) => h("tr", { "data-testid": `mult-row-${m}` },
        h("td", { class: "wrap" }, m), h("td", { "data-testid": `mult-count-${m}` }, t("adminPlans.counts", { n })),
        h("td", {}, h("div", { class: "actions" }, button(t("adminAcc.edit"), `mult-edit-${m}`, () => {
          multModel.value = m;
          multValue.value = String(n);
          multValue.focus();
        }, "secondary"), button(t("adminPlans.multRemove"), `mult-remove-${m}`, () => saveMult(m, null), "danger")))))));
  }

  // One entry set (value) or removed (null). The map sent is the plan's as it is now, read
  // just before, so an entry another admin saved since this page loaded is kept.
  async function saveMult(model, value) {
    const p = multPlan;
    if (value === null && !confirm(t("adminPlans.multRemoveConfirm", { model, name: p.name }))) return;
    const saved = await attempt(multOut, async () => {
      const map = { ...(await adminApi("GET", `/plans/${p.id}`)).data.model_multipliers };
      if (value === null) delete map[model];
      else map[model] = value;
      return (await adminApi("PATCH", `/plans/${p.id}`, { model_multipliers: map })).data;
    }, () => {
      if (value === null) return t("adminPlans.multRemoved", { model });
      const known = p.models || catalogue.includes(model);
      return t("adminPlans.multSaved", { model, n: value }) + (known ? "" : ` ${t("adminPlans.multUnknown", { model })}`);
    }, "mult-saved");
    if (!saved) return;
    if (multPlan && multPlan.id === saved.id) {
      multPlan = saved;
      renderMult();
    }
    if (value !== null) multForm.reset();
    await load(true);
  }

  multForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const model = multModel.value.trim();
    const raw = multValue.value.trim();
    const wrong = multError(multPlan, model, raw);
    if (wrong) {
      clear(multOut).append(message("error", wrong, "mult-saved-error"));
      return;
    }
    await saveMult(model, Number(raw));
  });

  async function load(keep) {
    const url = `/plans${retired.value === "1" ? "?include_retired=1" : ""}`;
    const got = keep ? await adminApi("GET", url).catch(() => null) : await attempt(listOut, () => adminApi("GET", url), "");
    if (!got) return;
    plans = got.data;
    if (multPlan) {  // the open multipliers follow the plan's edits (its models); gone when retired
      const now = plans.find((p) => p.id === multPlan.id && p.status !== "retired" && p.kind === "counts");
      if (now) {
        multPlan = now;
        renderMult();
      } else {
        openMult(null);
      }
    }
    clear(listBox);
    clear(grantPlan).append(...plans.filter((p) => p.status === "active")
      .map((p) => h("option", { value: p.id }, `${p.name} (${t(`adminPlans.kind.${p.kind}`)})`)));
    if (!plans.length) return listBox.append(muted(t("adminPlans.none"), "plans-none"));
    listBox.append(table("plan-table",
      [t("adminPlans.name"), t("adminPlans.kind"), t("adminPlans.quota"), t("adminPlans.period"),
        t("adminPlans.models"), t("adminPlans.multipliers"), t("common.status"), ""],
      plans.map((p) => h("tr", { "data-testid": `plan-row-${p.id}` },
        h("td", { "data-testid": "plan-row-name" }, p.name), h("td", {}, t(`adminPlans.kind.${p.kind}`)),
        h("td", {}, quotaText(p)), h("td", {}, t("adminPlans.days", { n: p.period_days })),
        h("td", {}, p.models ? p.models.join(", ") : t("adminPlans.allModels")),
        h("td", { class: "wrap", "data-testid": `plan-mults-${p.id}` }, multText(p)),
        h("td", {}, badge(p.status === "active" ? "active" : "revoked", t(`adminPlans.status.${p.status}`))),
        h("td", {}, p.status === "retired" ? "" : [
          button(t("adminAcc.edit"), `plan-edit-${p.id}`, () => edit(p), "secondary"), " ",
          ...(p.kind === "counts" ? [button(t("adminPlans.multipliers"), `plan-mult-${p.id}`, () => openMult(p), "secondary"), " "] : []),
          button(t("adminAcc.delete"), `plan-delete-${p.id}`, () => remove(p), "danger")])))));
  }
  retired.addEventListener("change", () => load());

  root.append(h("h1", {}, t("nav.adminPlans")),
    h("div", { class: "card" }, title, form, out),
    h("div", { class: "card" }, h("h2", {}, t("adminPlans.list")),
      h("div", { class: "row" }, field(t("adminPlans.which"), retired)), listOut, listBox),
    multCard,
    h("div", { class: "card" }, h("h2", {}, t("adminPlans.grantTitle")), muted(t("adminPlans.grantHint")), grantForm, grantOut));
  await load();
}
