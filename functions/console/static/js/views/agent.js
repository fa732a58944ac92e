// One agent: what it is now, and its versions, newest first. Every change to an agent makes a
// version; "Roll back" makes a new version equal to an earlier one (the history only grows).

import {h, messageArea, replace, showError, showOk} from "../dom.js";
import {count, usd, when} from "../format.js";

const PAGE = 20;

function made(version) {
  if (version.change === "rollback") return `rollback to v${version.restored_version}`;
  return version.change;
}

function prompt(definition) {
  const text = definition.system_prompt || "";
  const first = text.length > 90 ? `${text.slice(0, 90)}…` : text;
  return `${definition.own_system_prompt ? "" : "(personality's) "}${first}`;
}

export async function agentView(app, view, agentId) {
  const api = app.api;
  const [agent, firstPage] = await Promise.all([
    api.get(api.ws("agents", agentId)),
    api.get(api.ws("agents", agentId, "versions"), {limit: PAGE}),
  ]);
  const message = messageArea();
  const rows = h("tbody", {id: "versions-list"});
  const more = h("button", {type: "button", class: "secondary", text: "Show older versions"});
  let cursor = firstPage.next_cursor;

  async function rollBack(version, button) {
    button.disabled = true;
    try {
      const changed = await api.post(api.ws("agents", agentId, "rollback"), {version: version.version});
      const text = changed.version === agent.version
        ? `The agent already is as version ${version.version} was: nothing changed.`
        : `Rolled back: version ${changed.version} is equal to version ${version.version}.`;
      app.announce(text);
      await agentView(app, replace(view), agentId);
      showOk(view.querySelector("#agent-versions .message"), text);
    } catch (error) {
      button.disabled = false;
      showError(message, error);
    }
  }

  function row(version) {
    const d = version.definition;
    const current = version.version === agent.version;
    const button = current ? null : h("button", {type: "button", class: "secondary", text: `Roll back to v${version.version}`,
                                                  "aria-label": `Roll back to version ${version.version}`});
    if (button) button.addEventListener("click", () => rollBack(version, button));
    return h("tr", {dataset: {version: version.version, change: version.change}},
      h("th", {scope: "row", text: `v${version.version}${current ? " (current)" : ""}`}),
      h("td", {class: "change", text: made(version)}),
      h("td", {text: when(version.created_at)}),
      h("td", {class: "name", text: d.name}),
      h("td", {class: "model", text: d.model}),
      h("td", {class: "tools", text: (d.tools || []).join(", ") || "none"}),
      h("td", {class: "prompt", text: prompt(d)}),
      h("td", {}, button));
  }

  function render(items, append = false) {
    if (!append) replace(rows);
    rows.append(...items.map(row));
    more.hidden = !cursor;
  }
  render(firstPage.items);
  more.addEventListener("click", async () => {
    try {
      const page = await api.get(api.ws("agents", agentId, "versions"), {limit: PAGE, cursor});
      cursor = page.next_cursor;
      render(page.items, true);
    } catch (error) {
      showError(message, error);
    }
  });

  view.append(
    h("h1", {}, "Agent ", h("span", {id: "agent-name", text: agent.name})),
    h("p", {}, h("a", {href: "#/runs", text: "← Agents and runs"})),
    h("dl", {class: "figures"},
      h("dt", {text: "Version"}), h("dd", {id: "agent-version", text: String(agent.version)}),
      h("dt", {text: "Personality"}), h("dd", {text: agent.personality}),
      h("dt", {text: "Model"}), h("dd", {id: "agent-model", text: agent.model}),
      h("dt", {text: "Tools"}), h("dd", {id: "agent-tools", text: agent.tools.join(", ") || "none"}),
      h("dt", {text: "Steps per run"}), h("dd", {text: count(agent.max_steps)}),
      h("dt", {text: "Budget per run"}), h("dd", {text: usd(agent.budget_usd)}),
      h("dt", {text: "Changed"}), h("dd", {text: when(agent.updated_at)})),
    h("h2", {text: agent.own_system_prompt ? "System prompt" : "System prompt (the personality's)"}),
    h("pre", {class: "text", id: "agent-prompt", text: agent.system_prompt}),
    h("section", {id: "agent-versions", "aria-labelledby": "versions-title"},
      h("h2", {id: "versions-title", text: "Versions"}),
      h("p", {class: "hint", text: "Every change makes a version. Rolling back makes a new version equal to "
        + "the one you choose; runs already going keep the version they started with."}),
      h("div", {class: "scroll"},
        h("table", {class: "data"},
          h("caption", {class: "visually-hidden", text: "The agent's versions, newest first"}),
          h("thead", {}, h("tr", {}, ["Version", "Change", "When", "Name", "Model", "Tools", "System prompt", ""]
            .map((label) => h("th", {scope: "col", text: label})))),
          rows)),
      more, message));
}
