// Webhooks (admins and owners): the workspace's endpoints, adding one (its signing secret shown once),
// a test ping, removing one, and an endpoint's delivery log — each attempt's status code — with
// redelivery of a delivery that ended.

import {field, h, messageArea, replace, showError, showOk} from "../dom.js";
import {shortId, when} from "../format.js";

const EVENTS = ["run.succeeded", "run.failed", "run.cancelled", "run.timed_out", "run.paused",
                "approval.requested", "usage.alert", "session.idle"];

export async function webhooksView(app, view) {
  const {api} = app;
  let hooks = (await api.get(api.ws("webhooks"), {limit: 100})).items;
  let shown = null; // the endpoint whose deliveries are listed

  const hooksBody = h("tbody", {id: "webhooks"});
  const message = messageArea();
  const secretBox = h("div", {id: "webhook-secret"});
  const logTitle = h("h2", {id: "deliveries-title", text: "Deliveries"});
  const logBody = h("tbody", {id: "deliveries"});

  function renderHooks() {
    replace(hooksBody, hooks.length ? hooks.map((hook) =>
      h("tr", {dataset: {webhook: hook.id}},
        h("th", {scope: "row", text: hook.url}),
        h("td", {text: hook.events.join(", ")}),
        h("td", {class: `status-${hook.status}`, text: hook.disabled_reason ? `${hook.status}: ${hook.disabled_reason}`
                                                                             : hook.status}),
        h("td", {},
          h("button", {type: "button", class: "secondary", dataset: {action: "deliveries"},
                       "aria-label": `Deliveries to ${hook.url}`, on: {click: () => showDeliveries(hook)}},
            "Deliveries"),
          h("button", {type: "button", class: "secondary", dataset: {action: "test"},
                       "aria-label": `Send a test to ${hook.url}`, on: {click: () => ping(hook)}}, "Send test"),
          h("button", {type: "button", class: "secondary", dataset: {action: "remove"},
                       "aria-label": `Remove ${hook.url}`, on: {click: () => remove(hook)}}, "Remove"))))
      : h("tr", {}, h("td", {colspan: 4, text: "No webhooks yet: add one below."})));
  }

  async function showDeliveries(hook) {
    shown = hook;
    logTitle.textContent = `Deliveries to ${hook.url}`;
    await loadDeliveries();
  }

  async function loadDeliveries() {
    if (!shown) {
      replace(logBody, h("tr", {}, h("td", {colspan: 6, text: "Choose an endpoint's deliveries above."})));
      return;
    }
    const log = await api.get(api.ws("webhooks", shown.id, "deliveries"), {limit: 50});
    replace(logBody, log.items.length ? log.items.map((d) =>
      h("tr", {dataset: {delivery: d.id, status: d.status}},
        h("td", {title: d.id, text: shortId(d.id)}),
        h("td", {text: d.event_type}),
        h("td", {class: "delivery-status", text: d.status}),
        h("td", {class: "delivery-attempts", text: d.attempts.map((a) =>
          `${when(a.at)}: ${a.status_code ?? "no answer"}${a.error ? ` (${a.error})` : ""}`).join("; ") || "none yet"}),
        h("td", {text: d.next_attempt_at ? when(d.next_attempt_at) : "—"}),
        h("td", {}, d.status === "pending" ? null
          : h("button", {type: "button", class: "secondary", dataset: {action: "redeliver"},
                         on: {click: () => redeliver(d)}}, "Deliver again"))))
      : h("tr", {}, h("td", {colspan: 6, text: "No deliveries yet."})));
  }

  async function ping(hook) {
    try {
      await api.post(api.ws("webhooks", hook.id, "test"));
      showOk(message, `A test event is on its way to ${hook.url}.`);
      await showDeliveries(hook);
    } catch (error) {
      showError(message, error);
    }
  }

  async function remove(hook) {
    try {
      await api.request("DELETE", api.ws("webhooks", hook.id));
      hooks = hooks.filter((h2) => h2.id !== hook.id);
      if (shown && shown.id === hook.id) shown = null;
      renderHooks();
      await loadDeliveries();
      showOk(message, `Removed ${hook.url}.`);
    } catch (error) {
      showError(message, error);
    }
  }

  async function redeliver(delivery) {
    try {
      await api.post(api.ws("webhooks", shown.id, "deliveries", delivery.id, "retry"));
      showOk(message, "Delivering it again.");
      await loadDeliveries();
    } catch (error) {
      showError(message, error);
    }
  }

  const url = h("input", {type: "url", name: "webhook-url", required: true, maxlength: 2048, autocomplete: "off",
                          placeholder: "https://example.com/hooks/agenthq"});
  const boxes = EVENTS.map((name) => h("input", {type: "checkbox", name: "webhook-event", value: name,
                                                 checked: name === "run.succeeded" || name === "run.failed"}));
  const eventsField = h("fieldset", {},
    h("legend", {text: "Events"}),
    boxes.map((box) => h("label", {class: "check"}, box, ` ${box.value}`)));
  const form = h("form", {id: "add-webhook", "aria-labelledby": "add-webhook-title"},
    h("h2", {id: "add-webhook-title", text: "Add a webhook"}),
    field("URL", url, "https, on a public address; deliveries are signed (Standard Webhooks)."), eventsField,
    h("button", {type: "submit", text: "Add webhook"}));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const made = await api.post(api.ws("webhooks"), {
        url: url.value.trim(), events: boxes.filter((b) => b.checked).map((b) => b.value)});
      const {secret, ...hook} = made;
      hooks.push(hook);
      renderHooks();
      url.value = "";
      replace(secretBox, h("p", {}, "Its signing secret, shown only now: ",
        h("code", {id: "new-webhook-secret", text: secret})));
      showOk(message, `Added ${hook.url}.`);
    } catch (error) {
      showError(message, error);
    }
  });

  view.append(
    h("h1", {text: "Webhooks"}),
    h("section", {"aria-labelledby": "webhooks-title"},
      h("h2", {id: "webhooks-title", text: "Endpoints"}),
      h("table", {class: "data"},
        h("caption", {class: "visually-hidden", text: "The workspace's webhook endpoints"}),
        h("thead", {}, h("tr", {}, ["URL", "Events", "Status", "Actions"].map((t) => h("th", {scope: "col", text: t})))),
        hooksBody),
      message, secretBox),
    h("section", {"aria-labelledby": "deliveries-title"}, logTitle,
      h("table", {class: "data"},
        h("caption", {class: "visually-hidden", text: "Deliveries, newest first"}),
        h("thead", {}, h("tr", {}, ["Id", "Event", "Status", "Attempts", "Next attempt", ""]
          .map((t) => h("th", {scope: "col", text: t})))),
        logBody),
      h("button", {type: "button", class: "secondary", id: "refresh-deliveries", on: {click: loadDeliveries}},
        "Refresh")),
    form);
  renderHooks();
  await loadDeliveries();
}
