// Admin: content policy. Word lists (create, edit category/action/groups/enabled, delete),
// their words (add, remove, import a text or CSV file, export), the "test this text" box
// showing the hits of the saved lists, and the audit of hits.
import { adminApi, adminUrl } from "../../api.js";
import { clear, field, formatTime, h } from "../../dom.js";
import { t } from "../../i18n.js";
import { attempt, badge, button, input, muted, select, table, words, yesNo } from "./acc-kit.js";

const ACTIONS = ["block", "mask", "log"];

// The words of an imported file: one a line (txt), or the first column of a CSV whose
// header row names `word`.
export function fileWords(text, name) {
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  if (!/\.csv$/i.test(name)) return lines;
  const first = (l) => {
    const m = l.match(/^"((?:[^"]|"")*)"/);
    return m ? m[1].replace(/""/g, '"') : l.split(",")[0].trim();
  };
  const cells = lines.map(first);
  return cells[0] && cells[0].toLowerCase() === "word" ? cells.slice(1) : cells;
}

function listForm(onSaved) {
  const out = h("div");
  let editing = null;
  const name = input("safety-name", { maxlength: 64, required: true });
  const category = input("safety-category", { maxlength: 64 });
  const action = select("safety-action", ACTIONS.map((a) => [a, t(`adminSafety.action.${a}`)]), "block");
  const groups = input("safety-groups", { placeholder: t("adminSafety.groupsHint") });
  const enabled = select("safety-enabled", [["1", t("adminSafety.on")], ["0", t("adminSafety.off")]], "1");
  const description = input("safety-description", { maxlength: 512 });
  const title = h("h2", { "data-testid": "safety-form-title" }, t("adminSafety.newList"));
  const cancel = button(t("adminAcc.cancel"), "safety-cancel", () => edit(null), "secondary");
  cancel.hidden = true;
  const form = h("form", { class: "stack", "data-testid": "safety-form" },
    h("div", { class: "row" }, field(t("adminSafety.name"), name), field(t("adminSafety.category"), category),
      field(t("adminSafety.actionLabel"), action)),
    h("div", { class: "row" }, field(t("adminSafety.groups"), groups), field(t("adminSafety.enabled"), enabled),
      field(t("adminSafety.description"), description)),
    h("div", { class: "row" }, h("button", { type: "submit", "data-testid": "safety-save" }, t("adminAcc.save")), cancel));

  function edit(l) {
    editing = l;
    form.reset();
    title.textContent = l ? t("adminSafety.editing", { name: l.name }) : t("adminSafety.newList");
    cancel.hidden = !l;
    if (!l) return;
    name.value = l.name;
    category.value = l.category;
    action.value = l.action;
    groups.value = l.groups ? l.groups.join(", ") : "";
    enabled.value = l.enabled ? "1" : "0";
    description.value = l.description || "";
    form.scrollIntoView({ block: "start" });
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const g = words(groups.value);
    const b = { name: name.value.trim(), category: category.value.trim(), action: action.value,
      groups: g.length ? g : null, enabled: enabled.value === "1", description: description.value };
    const done = await attempt(out, () => editing
      ? adminApi("PATCH", `/safety/lists/${editing.id}`, b)
      : adminApi("POST", "/safety/lists", b), t("adminAcc.saved"), "safety-saved");
    if (done) {
      edit(null);
      await onSaved();
    }
  });
  return { card: h("div", { class: "card" }, title, form, out), edit };
}

function wordsPanel(l, onChange) {
  const out = h("div");
  const box = h("div");
  const adding = h("textarea", { rows: 3, "data-testid": "safety-add-words", placeholder: t("adminSafety.addHint") });
  const file = h("input", { type: "file", accept: ".txt,.csv,text/plain,text/csv", "data-testid": "safety-import-file" });

  async function load() {
    const got = (await adminApi("GET", `/safety/lists/${l.id}?words=1`)).data;
    clear(box);
    if (!got.word_list.length) return box.append(muted(t("adminSafety.noWords"), "safety-no-words"));
    box.append(table("safety-word-table", [t("adminSafety.word"), t("adminSafety.category"), t("adminSafety.actionLabel"), ""],
      got.word_list.map((w, i) => h("tr", { "data-testid": "safety-word" },
        h("td", {}, w.word), h("td", {}, w.category || "—"), h("td", {}, w.action ? t(`adminSafety.action.${w.action}`) : "—"),
        h("td", {}, button(t("adminSafety.remove"), `safety-remove-${i}`, async () => {
          if (await attempt(out, () => adminApi("DELETE", `/safety/lists/${l.id}/words`, { words: [w.word] }), "")) {
            await load();
            onChange();
          }
        }, "danger"))))));
  }

  async function add(list) {
    const r = await attempt(out, () => adminApi("POST", `/safety/lists/${l.id}/words`, { words: list }),
      (x) => t("adminSafety.added", { n: x.data.added, already: x.data.already_listed }), "safety-added");
    if (r) {
      adding.value = "";
      await load();
      onChange();
    }
  }
  const addButton = button(t("adminSafety.add"), "safety-add", () => add(adding.value.split(/\r?\n/).map((x) => x.trim()).filter(Boolean)));
  file.addEventListener("change", async () => {
    const f = file.files && file.files[0];
    if (!f) return;
    await add(fileWords(await f.text(), f.name));
    file.value = "";
  });
  const exports = ["txt", "csv", "json"].map((fmt) => h("a", { href: adminUrl(`/safety/lists/${l.id}/export?format=${fmt}`),
    download: `${l.name}.${fmt}`, "data-testid": `safety-export-${fmt}` }, t("adminSafety.export", { fmt })));
  const card = h("div", { class: "card", "data-testid": "safety-words-panel" },
    h("h2", {}, t("adminSafety.wordsOf", { name: l.name })),
    h("div", { class: "row" }, field(t("adminSafety.addLabel"), adding), addButton),
    h("div", { class: "row" }, field(t("adminSafety.import"), file), ...exports.flatMap((a) => [a])),
    out, box);
  return { card, load };
}

function testBox() {
  const text = h("textarea", { rows: 4, maxlength: 100000, "data-testid": "safety-test-text" });
  const group = input("safety-test-group", { value: "default", maxlength: 32 });
  const out = h("div", { "data-testid": "safety-test-result" });
  const run = button(t("adminSafety.test"), "safety-test-submit", async () => {
    const r = await attempt(out, () => adminApi("POST", "/safety/test", { text: text.value, group: group.value.trim() || "default" }), "");
    if (!r) return;
    const d = r.data;
    out.append(h("p", { "data-testid": "safety-test-summary" },
      d.hits.length ? t(d.blocked ? "adminSafety.blocked" : "adminSafety.hitsN", { n: d.hits.length }) : t("adminSafety.clean")));
    if (d.hits.length) out.append(table("safety-hits", [t("adminSafety.word"), t("adminSafety.list"), t("adminSafety.actionLabel"), t("adminSafety.where")],
      d.hits.map((x) => h("tr", { "data-testid": "safety-hit" }, h("td", {}, x.text), h("td", {}, x.list_name),
        h("td", {}, t(`adminSafety.action.${x.action}`)), h("td", {}, `${x.start}–${x.end}`)))));
  });
  return h("div", { class: "card" }, h("h2", {}, t("adminSafety.testTitle")), muted(t("adminSafety.testHint")),
    field(t("adminSafety.text"), text), h("div", { class: "row" }, field(t("adminSafety.group"), group), run), out);
}

function auditBox() {
  const out = h("div");
  const body = h("tbody");
  const more = button(t("adminAcc.more"), "safety-audit-more", () => load(false), "secondary");
  more.hidden = true;
  let before = null;
  async function load(reset) {
    const q = new URLSearchParams({ limit: "50" });
    if (!reset && before) q.set("before_id", String(before));
    const r = await attempt(out, () => adminApi("GET", `/safety/audit?${q}`), "");
    if (!r) return;
    if (reset) clear(body);
    body.append(...r.data.map((a) => h("tr", { "data-testid": "safety-audit-row" },
      h("td", {}, formatTime(a.created_at)), h("td", {}, a.user_id ?? "—"), h("td", {}, a.model || "—"),
      h("td", {}, a.list_name), h("td", {}, a.word), h("td", {}, t(`adminSafety.action.${a.action}`)),
      h("td", {}, a.where), h("td", {}, a.excerpt))));
    before = r.next_before_id;
    more.hidden = !before;
    if (reset && !r.data.length) out.append(muted(t("adminSafety.noAudit"), "safety-audit-none"));
  }
  const card = h("div", { class: "card" }, h("h2", {}, t("adminSafety.auditTitle")),
    button(t("adminSafety.refresh"), "safety-audit-refresh", () => load(true), "secondary"), out,
    table("safety-audit", [t("adminAcc.time"), t("adminSafety.user"), t("adminSafety.model"), t("adminSafety.list"),
      t("adminSafety.word"), t("adminSafety.actionLabel"), t("adminSafety.where"), t("adminSafety.excerpt")], body), more);
  return { card, load };
}

export async function render(ctx, root) {
  const out = h("div");
  const listBox = h("div");
  const panel = h("div");
  const form = listForm(() => load());

  async function open(l) {
    const p = wordsPanel(l, () => load());
    clear(panel).append(p.card);
    await p.load();
  }

  async function remove(l) {
    if (!confirm(t("adminSafety.deleteConfirm", { name: l.name }))) return;
    if (await attempt(out, () => adminApi("DELETE", `/safety/lists/${l.id}`), "")) {
      clear(panel);
      await load();
    }
  }

  async function load() {
    const r = await attempt(out, () => adminApi("GET", "/safety/lists"), "");
    if (!r) return;
    clear(listBox);
    if (!r.data.length) return listBox.append(muted(t("adminSafety.noLists"), "safety-no-lists"));
    listBox.append(table("safety-lists", [t("adminSafety.name"), t("adminSafety.category"), t("adminSafety.actionLabel"),
      t("adminSafety.groups"), t("adminSafety.enabled"), t("adminSafety.words"), ""],
      r.data.map((l) => h("tr", { "data-testid": `safety-list-${l.id}` },
        h("td", { "data-testid": "safety-list-name" }, l.name), h("td", {}, l.category || "—"),
        h("td", {}, t(`adminSafety.action.${l.action}`)), h("td", {}, l.groups ? l.groups.join(", ") : t("adminSafety.allGroups")),
        h("td", {}, badge(l.enabled ? "active" : "revoked", yesNo(l.enabled))),
        h("td", { "data-testid": "safety-list-count" }, String(l.words)),
        h("td", {}, button(t("adminSafety.openWords"), `safety-words-${l.id}`, () => open(l), "secondary"), " ",
          button(t("adminAcc.edit"), `safety-edit-${l.id}`, () => form.edit(l), "secondary"), " ",
          button(t("adminAcc.delete"), `safety-delete-${l.id}`, () => remove(l), "danger"))))));
  }

  const audit = auditBox();
  root.append(h("h1", {}, t("nav.adminSafety")), form.card,
    h("div", { class: "card" }, h("h2", {}, t("adminSafety.lists")), out, listBox),
    panel, testBox(), audit.card);
  await Promise.all([load(), audit.load(true)]);
}
