// Schedules: an agent's runs on a cron in a time zone, each with its next fire and its last one
// (launched, with its run; or skipped, with the limit's reason). Add one, switch it off or on,
// delete it. The list reads again when a run of the workspace changes status or an alert comes (live).

import {field, h, messageArea, replace, showError, showOk} from "../dom.js";
import {shortId, when} from "../format.js";

function lastFire(schedule) {
  const fire = schedule.last_fire;
  if (!fire) return h("td", {class: "last-fire", text: "not yet"});
  if (fire.status === "launched") {
    return h("td", {class: "last-fire"}, `${when(fire.at)} launched `,
      h("a", {href: `#/runs/${fire.run_id}`, title: fire.run_id, text: shortId(fire.run_id)}));
  }
  return h("td", {class: "last-fire", title: fire.message || "", text: `${when(fire.at)} ${fire.status} (${fire.reason})`});
}

export async function schedulesView(app, view) {
  const {api} = app;
  const agents = await api.get(api.ws("agents"), {limit: 100});
  const agentNames = new Map(agents.items.map((agent) => [agent.id, agent.name]));
  const body = h("tbody", {id: "schedules"});
  const listMessage = messageArea();

  async function load() {
    const schedules = await api.get(api.ws("schedules"), {limit: 100});
    replace(body, schedules.items.length ? schedules.items.map((schedule) => {
      const toggle = h("button", {type: "button", class: "secondary", name: "toggle",
                                  text: schedule.enabled ? "Switch off" : "Switch on"});
      toggle.addEventListener("click", async () => {
        try {
          await api.request("PATCH", api.ws("schedules", schedule.id), {body: {enabled: !schedule.enabled}});
          showOk(listMessage, `Schedule switched ${schedule.enabled ? "off" : "on"}.`);
          await load();
        } catch (error) {
          showError(listMessage, error);
        }
      });
      const remove = h("button", {type: "button", class: "secondary", name: "delete", text: "Delete"});
      remove.addEventListener("click", async () => {
        try {
          await api.request("DELETE", api.ws("schedules", schedule.id));
          showOk(listMessage, "Schedule deleted.");
          await load();
        } catch (error) {
          showError(listMessage, error);
        }
      });
      return h("tr", {dataset: {schedule: schedule.id}},
        h("th", {scope: "row", text: agentNames.get(schedule.agent_id) || shortId(schedule.agent_id)}),
        h("td", {class: "cron"}, h("code", {text: schedule.cron}), ` ${schedule.timezone}`),
        h("td", {class: "next-fire", text: schedule.enabled ? when(schedule.next_fire) : "switched off"}),
        lastFire(schedule),
        h("td", {}, toggle, " ", remove));
    }) : h("tr", {}, h("td", {colspan: 5, text: "No schedules yet: add one below."})));
  }

  const agentChoice = h("select", {name: "agent", required: true},
    agents.items.map((agent) => h("option", {value: agent.id, text: agent.name})));
  const cron = h("input", {type: "text", name: "cron", required: true, maxlength: 200, autocomplete: "off",
                           placeholder: "0 9 * * MON-FRI"});
  const zone = h("input", {type: "text", name: "timezone", required: true, maxlength: 64, autocomplete: "off",
                           value: Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC"});
  const input = h("textarea", {name: "input", rows: 3, required: true, maxlength: 100000});
  const addMessage = messageArea();
  const form = h("form", {id: "add-schedule", "aria-labelledby": "add-schedule-title"},
    h("h2", {id: "add-schedule-title", text: "Add a schedule"}),
    field("Agent", agentChoice),
    field("Cron", cron, "Five fields: minute hour day-of-month month day-of-week, e.g. 0 9 * * MON-FRI."),
    field("Time zone", zone, "An IANA time zone, e.g. Europe/Paris."),
    field("Input", input, "What each run asks the agent."),
    h("button", {type: "submit", text: "Add schedule"}), addMessage);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!agentChoice.value) {
      showError(addMessage, "Create an agent first.");
      return;
    }
    try {
      const schedule = await api.post(api.ws("agents", agentChoice.value, "schedules"),
                                      {cron: cron.value.trim(), timezone: zone.value.trim(), input: input.value});
      showOk(addMessage, `Schedule added: next fire ${when(schedule.next_fire)}.`);
      cron.value = "";
      input.value = "";
      await load();
    } catch (error) {
      showError(addMessage, error);
    }
  });

  view.append(
    h("h1", {text: "Schedules"}),
    h("section", {"aria-labelledby": "schedules-title"},
      h("h2", {id: "schedules-title", text: "Runs on a schedule"}),
      h("table", {class: "data"},
        h("caption", {class: "visually-hidden", text: "The workspace's schedules"}),
        h("thead", {}, h("tr", {}, ["Agent", "Cron", "Next fire", "Last fire", ""]
          .map((label) => h("th", {scope: "col", text: label})))),
        body),
      listMessage),
    form);
  await load();

  // Every change of the workspace, live: the page is read again (at most every 500 ms).
  app.onLeave(app.live.reloadOnWorkspace(load));
}
