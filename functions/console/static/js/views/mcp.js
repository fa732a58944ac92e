// The workspace's MCP servers: each with whether its last connection worked (and why not) and
// its tools; register a server (its header value is write-only: never shown again), refresh or
// remove one, and give a tool to an agent (it is added to the agent's tools as mcp__<server>__<tool>).

import {field, h, messageArea, replace, showError, showOk} from "../dom.js";
import {when} from "../format.js";

function statusText(server) {
  const status = server.status;
  if (status.state === "ok") {
    const skipped = status.skipped_tools ? `; ${status.skipped_tools} left out` : "";
    return `Connected ${when(status.checked_at)}: ${status.tool_count} tools${skipped}`;
  }
  return `Failed ${when(status.checked_at)}: ${status.message}`;
}

export async function mcpView(app, view) {
  const {api} = app;
  const [servers, agents] = await Promise.all([
    api.get(api.ws("mcp-servers"), {limit: 100}),
    api.get(api.ws("agents"), {limit: 100}),
  ]);
  const message = messageArea();
  const list = h("div", {id: "mcp-servers"});

  async function again(text) {
    await mcpView(app, replace(view));
    showOk(view.querySelector("#mcp-message"), text);
    app.announce(text);
  }

  async function giveTool(tool, choice, button) {
    const agent = agents.items.find((a) => a.id === choice.value);
    if (!agent) return;
    if (agent.tools.includes(tool.name)) {
      showOk(message, `${agent.name} already has ${tool.name}.`);
      return;
    }
    button.disabled = true;
    try {
      const changed = await api.request("PATCH", api.ws("agents", agent.id), {body: {tools: [...agent.tools, tool.name]}});
      agent.tools = changed.tools;
      showOk(message, `${agent.name} can now use ${tool.name}.`);
      app.announce(message.textContent);
    } catch (error) {
      showError(message, error);
    } finally {
      button.disabled = false;
    }
  }

  function toolRow(tool) {
    const choice = h("select", {"aria-label": `Agent to give ${tool.name}`},
      agents.items.map((agent) => h("option", {value: agent.id, text: agent.name})));
    const button = h("button", {type: "button", class: "secondary", text: "Give to agent",
                                "aria-label": `Give ${tool.name} to the chosen agent`});
    button.addEventListener("click", () => giveTool(tool, choice, button));
    return h("tr", {dataset: {tool: tool.name}},
      h("th", {scope: "row", class: "tool-name", text: tool.name}),
      h("td", {text: tool.description || ""}),
      h("td", {}, agents.items.length ? [choice, " ", button] : "Create an agent first."));
  }

  function serverSection(server) {
    const refresh = h("button", {type: "button", class: "secondary", text: "Refresh",
                                 "aria-label": `Refresh ${server.name}`});
    const remove = h("button", {type: "button", class: "secondary", text: "Remove",
                                "aria-label": `Remove ${server.name}`});
    refresh.addEventListener("click", async () => {
      refresh.disabled = true;
      try {
        const refreshed = await api.post(api.ws("mcp-servers", server.id, "refresh"));
        await again(`${refreshed.name}: ${statusText(refreshed)}.`);
      } catch (error) {
        refresh.disabled = false;
        showError(message, error);
      }
    });
    remove.addEventListener("click", async () => {
      remove.disabled = true;
      try {
        await api.request("DELETE", api.ws("mcp-servers", server.id));
        await again(`${server.name} removed.`);
      } catch (error) {
        remove.disabled = false;
        showError(message, error);
      }
    });
    const titleId = `mcp-${server.id}-title`;
    return h("section", {class: "mcp-server", dataset: {server: server.id, state: server.status.state},
                         "aria-labelledby": titleId},
      h("h2", {id: titleId, text: server.name}),
      h("p", {class: "url", text: server.url}),
      h("p", {class: `status ${server.status.state}`, text: statusText(server)}),
      server.header_names.length
        ? h("p", {class: "hint", text: `Headers sent: ${server.header_names.join(", ")} (values are never shown)`})
        : null,
      server.tools.length ? h("div", {class: "scroll"},
        h("table", {class: "data"},
          h("caption", {class: "visually-hidden", text: `The tools of ${server.name}`}),
          h("thead", {}, h("tr", {}, ["Tool", "Description", "Agents"].map((label) =>
            h("th", {scope: "col", text: label})))),
          h("tbody", {}, server.tools.map(toolRow)))) : null,
      h("p", {}, refresh, " ", remove));
  }

  replace(list, servers.items.length ? servers.items.map(serverSection)
    : h("p", {text: "No MCP servers yet: register one below."}));

  // ---- register
  const name = h("input", {type: "text", name: "mcp-name", required: true, maxlength: 24, autocomplete: "off",
                           pattern: "[a-z][a-z0-9\\-]{0,23}"});
  const url = h("input", {type: "url", name: "mcp-url", required: true, maxlength: 2048, autocomplete: "off"});
  const headerName = h("input", {type: "text", name: "mcp-header-name", value: "Authorization", maxlength: 64,
                                 autocomplete: "off"});
  const headerValue = h("input", {type: "password", name: "mcp-header-value", maxlength: 4096,
                                  autocomplete: "new-password"});
  const form = h("form", {id: "register-mcp", "aria-labelledby": "register-mcp-title"},
    h("h2", {id: "register-mcp-title", text: "Register an MCP server"}),
    field("Name", name, "Lowercase letters, digits and '-': agents name its tools mcp__<name>__<tool>."),
    field("URL", url, "Its Streamable HTTP endpoint (https, a public address)."),
    field("Header name", headerName),
    field("Header value", headerValue, "A secret: stored encrypted, never shown again. Leave empty for none."),
    h("button", {type: "submit", text: "Register server"}));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button");
    button.disabled = true;
    const body = {name: name.value.trim(), url: url.value.trim()};
    if (headerValue.value) body.headers = {[headerName.value.trim()]: headerValue.value};
    try {
      const server = await api.post(api.ws("mcp-servers"), body);
      headerValue.value = "";
      await again(`${server.name} registered. ${statusText(server)}.`);
    } catch (error) {
      button.disabled = false;
      showError(message, error);
    }
  });

  message.id = "mcp-message";
  view.append(
    h("h1", {text: "MCP servers"}),
    h("p", {class: "hint", text: "Your own MCP servers: their tools become tools your agents can use."}),
    message, list, form);
}
