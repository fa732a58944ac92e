// One run, live: its events arrive over the WebSocket API (stored ones first, then as they
// happen) and its status, steps, tool calls and cost follow them.

import {h, messageArea, replace, showError} from "../dom.js";
import {count, dollars, micro, usd, when} from "../format.js";

const TERMINAL = new Set(["run.succeeded", "run.failed", "run.cancelled", "run.timed_out"]);
const STATUS_OF = {
  "run.queued": "queued", "run.started": "running", "run.waiting": "waiting", "run.paused": "paused",
  "run.resumed": "running", "run.succeeded": "succeeded", "run.failed": "failed", "run.cancelled": "cancelled",
  "run.timed_out": "timed_out",
};
const ENDED = new Set(["succeeded", "failed", "cancelled", "timed_out"]);

/** What an event says, in one line. */
export function summary(event) {
  const d = event.data || {};
  switch (event.type) {
    case "run.queued":
      return "Queued.";
    case "run.started":
      return d.messages_delivered ? `Started with ${d.messages_delivered} message(s) from other agents.` : "Started.";
    case "model.called": {
      const u = d.usage || {};
      const tokens = (u.input_tokens || 0) + (u.output_tokens || 0) + (u.cache_write_tokens || 0)
        + (u.cache_read_tokens || 0);
      return `Step ${d.step}: ${d.model} answered (${d.stop_reason}), ${count(tokens)} tokens, ${usd(d.cost_usd)}`
        + (d.tool_uses && d.tool_uses.length ? `; wants ${d.tool_uses.join(", ")}.` : ".");
    }
    case "tool.called":
      return `${d.name}(${JSON.stringify(d.input ?? {})})`;
    case "tool.result":
      return `${d.name} → ${typeof d.content === "string" ? d.content : JSON.stringify(d.content)}`
        + (d.is_error ? " (error)" : "");
    case "run.waiting":
      return `Waiting for child run ${d.child_run_id ?? ""}.`;
    case "run.paused":
      return `Paused at a limit: ${d.limit || d.reason}.`;
    case "run.resumed":
      return `Resumed (${d.by}) after ${count(d.paused_seconds)} s.`;
    case "run.succeeded":
      return "Succeeded.";
    case "run.failed":
    case "run.cancelled":
    case "run.timed_out":
      return `${event.type.slice(4).replace("_", " ")}${d.error ? `: ${d.error.reason} — ${d.error.message}` : "."}`;
    default:
      return JSON.stringify(d).slice(0, 300);
  }
}

export async function runView(app, view, runId) {
  const {api} = app;
  let run = await api.get(api.ws("runs", runId));
  const figures = {status: run.status, steps: run.steps, toolCalls: run.usage.tool_calls,
                   cost: run.usage.cost_usd, infra: run.usage.infra_cost_usd};
  const fromEvents = {steps: 0, toolCalls: 0, costMicro: 0};

  const statusEl = h("dd", {id: "run-status"});
  const stepsEl = h("dd", {id: "run-steps"});
  const toolsEl = h("dd", {id: "run-tool-calls"});
  const costEl = h("dd", {id: "run-cost"});
  const infraEl = h("dd", {id: "run-infra-cost"});
  const outputEl = h("pre", {id: "run-output", class: "text"});
  const errorEl = h("p", {id: "run-error", class: "message error", hidden: true});
  const events = h("ol", {id: "run-events", class: "events", "aria-label": "Events, in order"});
  const cancelMessage = messageArea();
  const cancel = h("button", {type: "button", class: "danger", id: "cancel-run", text: "Cancel run"});

  function renderFigures() {
    statusEl.className = `status ${figures.status}`;
    statusEl.dataset.status = figures.status;
    statusEl.textContent = figures.status;
    stepsEl.textContent = count(figures.steps);
    toolsEl.textContent = count(figures.toolCalls);
    replace(costEl, h("data", {value: figures.cost, text: usd(figures.cost)}));
    replace(infraEl, h("data", {value: figures.infra, text: usd(figures.infra)}));
    cancel.hidden = ENDED.has(figures.status);
  }

  function renderEnd() {
    outputEl.textContent = run.output ?? (ENDED.has(figures.status) ? "(none)" : "(no answer yet)");
    errorEl.hidden = !run.error;
    errorEl.textContent = run.error ? `${run.error.reason}: ${run.error.message}` : "";
  }

  renderFigures();
  renderEnd();
  cancel.addEventListener("click", async () => {
    try {
      await api.post(api.ws("runs", runId, "cancel"));
      cancelMessage.textContent = "Cancel requested: the run ends at its next step.";
    } catch (error) {
      showError(cancelMessage, error);
    }
  });

  view.append(
    h("h1", {}, "Run ", h("code", {text: runId})),
    h("dl", {class: "figures"},
      h("dt", {text: "Status"}), statusEl,
      h("dt", {text: "Steps"}), stepsEl,
      h("dt", {text: "Tool calls"}), toolsEl,
      h("dt", {text: "Model cost"}), costEl,
      h("dt", {text: "Infrastructure cost"}), infraEl,
      h("dt", {text: "Launched"}), h("dd", {text: when(run.created_at)}),
      h("dt", {text: "Agent version"}), h("dd", {id: "run-agent-version"},
        run.agent_version ? h("a", {href: `#/agents/${run.agent_id}`, text: `v${run.agent_version}`}) : "—")),
    cancel, cancelMessage,
    h("h2", {text: "Input"}), h("pre", {class: "text", text: run.input}),
    h("h2", {text: "Output"}), outputEl, errorEl,
    h("section", {"aria-labelledby": "events-title"},
      h("h2", {id: "events-title", text: "Events"}),
      app.live.available ? null : h("p", {class: "message error", text: "Live updates are not configured "
        + "(no WebSocket URL): this list does not follow the run."}),
      events));

  async function ended() {
    try {
      run = await api.get(api.ws("runs", runId));
      figures.infra = run.usage.infra_cost_usd;
      figures.cost = run.usage.cost_usd;
      renderFigures();
      renderEnd();
    } catch {
      // the figures from the events stand
    }
  }

  const stop = app.live.watchRun(runId, (event) => {
    events.append(h("li", {class: "event", dataset: {seq: event.seq, type: event.type}},
      h("span", {class: "seq", text: `#${event.seq}`}), " ",
      h("code", {class: "type", text: event.type}), " ",
      h("time", {datetime: event.at, text: when(event.at).slice(11)}), " ",
      h("span", {class: "summary", text: summary(event)})));
    const d = event.data || {};
    if (event.type === "model.called") {
      fromEvents.steps += 1;
      fromEvents.costMicro += micro(d.cost_usd);
      figures.steps = Math.max(figures.steps, fromEvents.steps);
      figures.cost = dollars(Math.max(micro(figures.cost), fromEvents.costMicro));
    } else if (event.type === "tool.result") {
      fromEvents.toolCalls += 1;
      figures.toolCalls = Math.max(figures.toolCalls, fromEvents.toolCalls);
    }
    if (STATUS_OF[event.type] && !(ENDED.has(figures.status) && !TERMINAL.has(event.type))) {
      const before = figures.status;
      figures.status = STATUS_OF[event.type];
      if (before !== figures.status) app.announce(`Run ${figures.status}.`);
    }
    if (TERMINAL.has(event.type)) {
      if (d.usage) {
        figures.cost = d.usage.cost_usd ?? figures.cost;
        figures.steps = d.usage.steps ?? figures.steps;
        figures.toolCalls = d.usage.tool_calls ?? figures.toolCalls;
      }
      renderFigures();
      ended();
      return;
    }
    renderFigures();
  }, {onError: (frame) => showError(cancelMessage, frame.message || "The live connection refused this run.")});
  app.onLeave(stop);
}
