// Tool calls waiting for a person: each pending approval with Approve and Deny (with a reason).
// The list follows the workspace's live subscription: a new request or a decision made elsewhere
// (another person, the CLI, expiry) shows without a reload.

import {field, h, messageArea, replace, showError, showOk} from "../dom.js";
import {shortId, when} from "../format.js";

const PAGE = 50;

export async function approvalsView(app, view) {
  const {api} = app;
  const list = h("div", {id: "approvals-list"});
  const message = messageArea();
  message.id = "approvals-message";

  function card(approval) {
    const reason = h("input", {type: "text", name: "reason", maxlength: 2000, autocomplete: "off"});
    const approve = h("button", {type: "button", class: "approve", text: "Approve"});
    const deny = h("button", {type: "button", class: "secondary deny", text: "Deny"});
    const titleId = `approval-${approval.id}-title`;
    async function decide(decision) {
      approve.disabled = deny.disabled = true;
      try {
        const body = {decision, ...(reason.value.trim() ? {reason: reason.value.trim()} : {})};
        const decided = await api.post(api.ws("approvals", approval.id), body);
        showOk(message, `${decided.tool} ${decided.status}.`);
        app.announce(`${decided.tool} ${decided.status}.`);
        await refresh();
      } catch (error) {
        showError(message, error);
        approve.disabled = deny.disabled = false;
        await refresh();
      }
    }
    approve.addEventListener("click", () => decide("approve"));
    deny.addEventListener("click", () => decide("deny"));
    return h("section", {class: "approval", dataset: {approval: approval.id, tool: approval.tool},
                         "aria-labelledby": titleId},
      h("h2", {id: titleId, text: `${approval.tool} in run ${shortId(approval.run_id)}`}),
      h("p", {}, h("a", {href: `#/runs/${approval.run_id}`, text: `Open run ${shortId(approval.run_id)}`}),
        ` · asked ${when(approval.created_at)} · `,
        h("span", {text: `expires ${when(approval.expires_at)}, then ${approval.on_timeout === "approve"
          ? "approved" : "denied"}`})),
      // the input is the model's: shown as text, never as markup
      h("pre", {class: "approval-input", text: JSON.stringify(approval.input, null, 2)}),
      field("Reason (the model is told when you deny)", reason),
      h("p", {class: "actions"}, approve, " ", deny));
  }

  async function refresh() {
    const page = await api.get(api.ws("approvals"), {status: "pending", limit: PAGE});
    replace(list, page.items.length ? page.items.map(card)
      : h("p", {class: "empty", text: "No tool calls are waiting for approval."}));
  }
  await refresh();
  view.append(h("h1", {text: "Approvals"}),
    h("p", {text: "Tool calls whose policy is ask wait here for a decision; the run goes on once every call "
      + "of its turn is decided."}),
    message, list);

  // Requests and decisions of the workspace, live: the list is read again (at most every 500 ms), and
  // once the subscription holds (a request made before it would otherwise show only on a reload).
  const approval = (frame) => frame.type === "run.event" && String(frame.event && frame.event.type).startsWith("approval.");
  app.onLeave(app.live.reloadOnWorkspace(refresh, {when: (frame) => approval(frame) || frame.type === "subscribed"}));
}
