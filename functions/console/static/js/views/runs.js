// The workspace's agents and runs: create an agent, launch a run, and the runs list, which
// follows the workspace's status changes live.

import {field, h, messageArea, replace, showError, showOk} from "../dom.js";
import {count, shortId, usd, when} from "../format.js";

const PAGE = 20;

export async function runsView(app, view) {
  const {api} = app;
  const [agents, personalities, runs] = await Promise.all([
    api.get(api.ws("agents"), {limit: 100}),
    api.get("personalities"),
    api.get(api.ws("runs"), {limit: PAGE}),
  ]);
  const agentNames = new Map(agents.items.map((agent) => [agent.id, agent.name]));

  // ---- agents
  const agentsBody = h("tbody");
  function renderAgents() {
    replace(agentsBody, agents.items.length ? agents.items.map((agent) =>
      h("tr", {dataset: {agent: agent.id}},
        h("th", {scope: "row"}, h("a", {href: `#/agents/${agent.id}`, text: agent.name})),
        h("td", {text: agent.personality}),
        h("td", {text: agent.model}),
        h("td", {text: agent.tools.join(", ") || "none"})))
      : h("tr", {}, h("td", {colspan: 4, text: "No agents yet: create one below."})));
  }
  renderAgents();

  const agentName = h("input", {type: "text", name: "agent-name", required: true, maxlength: 64, autocomplete: "off"});
  const personality = h("select", {name: "personality", required: true},
    personalities.items.map((p) => h("option", {value: p.id, text: `${p.name} — ${p.description}`})));
  const agentMessage = messageArea();
  const agentForm = h("form", {id: "create-agent", "aria-labelledby": "create-agent-title"},
    h("h3", {id: "create-agent-title", text: "Create an agent"}),
    field("Name", agentName), field("Personality", personality),
    h("button", {type: "submit", text: "Create agent"}), agentMessage);
  agentForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const agent = await api.post(api.ws("agents"), {name: agentName.value.trim(), personality: personality.value});
      agents.items.push(agent);
      agentNames.set(agent.id, agent.name);
      renderAgents();
      renderAgentChoice(agent.id);
      agentName.value = "";
      showOk(agentMessage, `Agent ${agent.name} created.`);
    } catch (error) {
      showError(agentMessage, error);
    }
  });

  // ---- launch
  const agentChoice = h("select", {name: "agent", required: true});
  function renderAgentChoice(selected) {
    replace(agentChoice, agents.items.map((agent) => h("option", {value: agent.id, text: agent.name})));
    if (selected) agentChoice.value = selected;
  }
  renderAgentChoice();
  const input = h("textarea", {name: "input", rows: 4, required: true, maxlength: 100000});
  const launchMessage = messageArea();
  const launchForm = h("form", {id: "launch-run", "aria-labelledby": "launch-title"},
    h("h2", {id: "launch-title", text: "Launch a run"}),
    field("Agent", agentChoice),
    field("Input", input, "What the agent should do. (The offline model follows lines like "
      + "/tool calculator {\"expression\": \"6 * 7\"}.)"),
    h("button", {type: "submit", text: "Launch run"}), launchMessage);
  launchForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!agentChoice.value) {
      showError(launchMessage, "Create an agent first.");
      return;
    }
    const button = launchForm.querySelector("button");
    button.disabled = true;
    try {
      // One key per click: a retried request (a dropped connection) never launches a second run.
      const run = await api.post(api.ws("agents", agentChoice.value, "runs"), {input: input.value},
                                 {"Idempotency-Key": crypto.randomUUID()});
      app.announce(`Run ${run.id} launched.`);
      app.go(`#/runs/${run.id}`);
    } catch (error) {
      showError(launchMessage, error);
      button.disabled = false;
    }
  });

  // ---- runs
  const runsBody = h("tbody", {id: "runs-list"});
  const more = h("button", {type: "button", class: "secondary", text: "Show older runs"});
  let cursor = runs.next_cursor;
  function runRow(run) {
    return h("tr", {dataset: {run: run.id, status: run.status}},
      h("th", {scope: "row"}, h("a", {href: `#/runs/${run.id}`, title: run.id, "aria-label": `Run ${run.id}`,
                                         text: shortId(run.id)})),
      h("td", {text: agentNames.get(run.agent_id) || shortId(run.agent_id)}),
      h("td", {class: `status ${run.status}`, text: run.status}),
      h("td", {class: "num", text: count(run.steps)}),
      h("td", {class: "num", text: count(run.usage.tool_calls)}),
      h("td", {class: "num"}, h("data", {value: run.usage.cost_usd, text: usd(run.usage.cost_usd)})),
      h("td", {text: when(run.created_at)}));
  }
  function renderRuns(items, append = false) {
    if (!append) replace(runsBody);
    if (!items.length && !append) runsBody.append(h("tr", {}, h("td", {colspan: 7, text: "No runs yet."})));
    runsBody.append(...items.map(runRow));
    more.hidden = !cursor;
  }
  renderRuns(runs.items);
  more.addEventListener("click", async () => {
    const page = await api.get(api.ws("runs"), {limit: PAGE, cursor});
    cursor = page.next_cursor;
    renderRuns(page.items, true);
  });

  view.append(
    h("h1", {text: "Agents and runs"}),
    launchForm,
    h("section", {"aria-labelledby": "runs-title"},
      h("h2", {id: "runs-title", text: "Runs"}),
      h("table", {class: "data"},
        h("caption", {class: "visually-hidden", text: "Runs, newest first"}),
        h("thead", {}, h("tr", {}, ["Run", "Agent", "Status", "Steps", "Tool calls", "Model cost", "Launched"]
          .map((label) => h("th", {scope: "col", text: label})))),
        runsBody),
      more),
    h("section", {"aria-labelledby": "agents-title"},
      h("h2", {id: "agents-title", text: "Agents"}),
      h("table", {class: "data"},
        h("caption", {class: "visually-hidden", text: "The workspace's agents"}),
        h("thead", {}, h("tr", {}, ["Name", "Personality", "Model", "Tools"]
          .map((label) => h("th", {scope: "col", text: label})))),
        agentsBody),
      agentForm));

  // Status changes of every run, live: the first page is read again (at most every 750 ms).
  app.onLeave(app.live.reloadOnWorkspace(async () => {
    const page = await api.get(api.ws("runs"), {limit: PAGE});
    cursor = page.next_cursor;
    renderRuns(page.items);
  }, {everyMs: 750, when: (frame) => frame.type === "run.event" || frame.type === "subscribed"}));
}
