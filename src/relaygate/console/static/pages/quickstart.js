// Quick start: the base URL, snippets for the openai SDK (new and old), Node.js and curl, and
// how to set up each chat tool (quickstart-tools.js).
import { h } from "../dom.js";
import { t } from "../i18n.js";
import { toolsCard } from "./quickstart-tools.js";

function snippet(title, text, testid) {
  return h("div", { class: "card" }, h("h2", {}, title), h("pre", { class: "code", "data-testid": testid }, text));
}

export async function render(ctx, root) {
  const base = `${location.origin}/v1`;
  const key = "YOUR_KEY";
  const model = "gpt-4o-mini";
  root.append(
    h("h1", {}, t("nav.quickstart")),
    h("div", { class: "card" }, h("h2", {}, t("quick.baseUrl")),
      h("div", { class: "secret", "data-testid": "base-url" }, base),
      h("p", { class: "muted" }, t("quick.keyHint")), h("a", { href: "#/keys" }, t("dash.toKeys"))),
    snippet(t("quick.pythonNew"),
      `from openai import OpenAI\n\nclient = OpenAI(base_url="${base}", api_key="${key}")\n` +
      `reply = client.chat.completions.create(\n    model="${model}",\n` +
      `    messages=[{"role": "user", "content": "Hello"}],\n)\nprint(reply.choices[0].message.content)`,
      "snippet-python"),
    snippet(t("quick.pythonOld"),
      `import openai  # openai<1.0\n\nopenai.api_base = "${base}"\nopenai.api_key = "${key}"\n` +
      `reply = openai.ChatCompletion.create(\n    model="${model}",\n` +
      `    messages=[{"role": "user", "content": "Hello"}],\n)\nprint(reply.choices[0].message.content)`,
      "snippet-python-old"),
    snippet("Node.js", `import OpenAI from "openai";\n\nconst client = new OpenAI({ baseURL: "${base}", apiKey: "${key}" });\n` +
      `const reply = await client.chat.completions.create({\n  model: "${model}",\n` +
      `  messages: [{ role: "user", content: "Hello" }],\n});\nconsole.log(reply.choices[0].message.content);`,
      "snippet-node"),
    snippet("curl", `curl ${base}/chat/completions \\\n  -H "Authorization: Bearer ${key}" \\\n` +
      `  -H "Content-Type: application/json" \\\n` +
      `  -d '{"model": "${model}", "messages": [{"role": "user", "content": "Hello"}]}'`, "snippet-curl"),
    toolsCard(),
  );
}
