// Sessions: conversations with an agent that go on across runs. The list (and a form to start one),
// and one session as a chat — its transcript, a box for the next message, and its events arriving
// live through the session's one cursor (every run of it and their delegated children, in order).

import {h, messageArea, replace, showError} from "../dom.js";
import {count, usd, when} from "../format.js";
import {summary} from "./run.js";

const TERMINAL = new Set(["run.succeeded", "run.failed", "run.cancelled", "run.timed_out"]);

async function all(api, path) {
  const items = [];
  let cursor = null;
  do {
    const page = await api.get(path, {limit: 100, cursor});
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return items;
}

function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `console-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

export async function sessionsView(app, view) {
  const {api} = app;
  const [sessions, agents] = await Promise.all([all(api, api.ws("sessions")), all(api, api.ws("agents"))]);
  const names = new Map(agents.map((a) => [a.id, a.name]));
  const message = messageArea();
  const agentSelect = h("select", {name: "agent", id: "new-session-agent", required: true},
    agents.map((a) => h("option", {value: a.id, text: a.name})));
  const title = h("input", {name: "title", id: "new-session-title", maxlength: 200});
  const form = h("form", {id: "new-session"},
    h("label", {for: "new-session-agent", text: "Agent"}), agentSelect,
    h("label", {for: "new-session-title", text: "Title (optional)"}), title,
    h("button", {type: "submit", text: "Start a session"}), message);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const made = await api.post(api.ws("agents", agentSelect.value, "sessions"),
        title.value.trim() ? {title: title.value.trim()} : {});
      app.announce("Session started.");
      app.go(`#/sessions/${made.id}`);
    } catch (error) {
      showError(message, error);
    }
  });
  view.append(
    h("h1", {text: "Sessions"}),
    agents.length ? form : h("p", {text: "Create an agent first (Agents and runs)."}),
    h("table", {id: "sessions-list"},
      h("thead", {}, h("tr", {}, ["Session", "Agent", "Status", "Turns", "Model cost", "Updated"].map(
        (text) => h("th", {scope: "col", text})))),
      h("tbody", {}, sessions.map((s) => h("tr", {dataset: {session: s.id}},
        h("th", {scope: "row"}, h("a", {href: `#/sessions/${s.id}`, text: s.title || s.id})),
        h("td", {text: names.get(s.agent_id) || s.agent_id}),
        h("td", {class: `status ${s.status}`, text: s.status}),
        h("td", {text: count(s.turns)}),
        h("td", {text: usd(s.usage.cost_usd)}),
        h("td", {text: when(s.updated_at)}))))));
}

export async function sessionView(app, view, sessionId) {
  const {api} = app;
  let session = await api.get(api.ws("sessions", sessionId));
  const chat = h("ol", {id: "session-chat", class: "chat", "aria-label": "The conversation"});
  const events = h("ol", {id: "session-events", class: "events", "aria-label": "The session's events, in order"});
  const statusEl = h("dd", {id: "session-status"});
  const turnsEl = h("dd", {id: "session-turns"});
  const costEl = h("dd", {id: "session-cost"});
  const message = messageArea();
  const input = h("textarea", {name: "input", id: "session-input", rows: 3, required: true});
  const form = h("form", {id: "session-send"},
    h("label", {for: "session-input", text: "Your message"}), input,
    h("button", {type: "submit", text: "Send"}), message);

  function renderFigures() {
    statusEl.className = `status ${session.status}`;
    statusEl.dataset.status = session.status;
    statusEl.textContent = session.status;
    turnsEl.textContent = count(session.turns);
    replace(costEl, h("data", {value: session.usage.cost_usd, text: usd(session.usage.cost_usd)}));
  }

  async function renderChat() {
    const entries = await all(api, api.ws("sessions", sessionId, "messages"));
    replace(chat, entries.map((entry) => h("li", {class: `chat-${entry.role}`, dataset: {role: entry.role, run: entry.run_id}},
      h("span", {class: "who", text: entry.role === "user" ? "You" : "Agent"}), " ",
      h("time", {datetime: entry.at, text: when(entry.at)}),
      h("pre", {class: "text", text: entry.text}))));
  }

  async function refresh() {
    try {
      session = await api.get(api.ws("sessions", sessionId));
      renderFigures();
      await renderChat();
    } catch (error) {
      showError(message, error);
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = input.value;
    if (!text.trim()) return;
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      await api.post(api.ws("sessions", sessionId, "messages"), {input: text}, {"Idempotency-Key": newKey()});
      input.value = "";
      app.announce("Message sent.");
      await refresh();
    } catch (error) {
      showError(message, error);
    } finally {
      button.disabled = false;
    }
  });

  renderFigures();
  view.append(
    h("h1", {}, "Session ", h("span", {id: "session-title", text: session.title || sessionId})),
    h("dl", {class: "figures"},
      h("dt", {text: "Status"}), statusEl,
      h("dt", {text: "Turns"}), turnsEl,
      h("dt", {text: "Model cost"}), costEl,
      h("dt", {text: "Agent version"}), h("dd", {id: "session-agent-version",
        text: session.agent_version === "latest" ? "latest" : `v${session.agent_version}`})),
    h("section", {"aria-labelledby": "chat-title"}, h("h2", {id: "chat-title", text: "Conversation"}), chat, form),
    h("section", {"aria-labelledby": "session-events-title"},
      h("h2", {id: "session-events-title", text: "Events"}),
      app.live.available ? null : h("p", {class: "message error", text: "Live updates are not configured "
        + "(no WebSocket URL): this list does not follow the session."}),
      events));
  await renderChat();

  const stop = app.live.watchSession(sessionId, (event) => {
    events.append(h("li", {class: "event", dataset: {seq: event.seq, type: event.type, run: event.run_id}},
      h("span", {class: "seq", text: `#${event.seq}`}), " ",
      h("a", {href: `#/runs/${event.run_id}`, class: "run", text: event.run_id.slice(-6)}), " ",
      h("code", {class: "type", text: event.type}), " ",
      h("time", {datetime: event.at, text: when(event.at).slice(11)}), " ",
      h("span", {class: "summary", text: event.type === "session.compacted"
        ? `Summarised turns ${(event.data.turns || []).join(", ")} to keep within the context budget.`
        : summary(event)})));
    if (event.type === "run.queued" || event.type === "run.started" || TERMINAL.has(event.type)) refresh();
  }, {onError: (frame) => showError(message, frame.message || "The live connection refused this session.")});
  app.onLeave(stop);
}
