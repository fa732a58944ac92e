// E-mail verification: the page a mailed link opens (#/verify-email/<token>: the token is in the fragment,
// which the browser never sends to a server, and it leaves the address bar and history at once), and the
// notice a signed-in user whose address is not verified sees, with a button that mails a new link.

import {h, messageArea, replace, showError, showOk} from "../dom.js";

export async function verifyEmailView(app, view, token) {
  history.replaceState(null, "", "#/verify-email"); // the token is not kept in the history or the address bar
  const message = messageArea();
  view.append(h("h1", {text: "Verify your e-mail address"}), message);
  message.textContent = "Verifying…";
  try {
    const answer = await app.api.request("POST", "auth/verify-email", {body: {token}, anonymous: true});
    showOk(message, `${answer.email} is verified: its workspace can launch runs.`);
    if (app.me) {
      app.me = {...app.me, user: {...app.me.user, email_verified: true}};
      app.renderHeader();
    }
  } catch (error) {
    showError(message, error);
  }
  view.append(h("p", {}, h("a", {href: app.home(), text: app.mode ? "Back to the console" : "Sign in"})));
}

/** In the header: the signed-in user's address awaits verification (and this deployment holds runs for it). */
export function verificationNotice(app) {
  const me = app.me;
  if (app.mode !== "workspace" || !me || me.user.email_verified || !me.email_verification_required) return null;
  const outcome = h("span", {class: "message", role: "status", "aria-live": "polite"});
  const resend = h("button", {type: "button", class: "secondary", id: "resend-verification",
                              text: "Mail me a new link"});
  resend.addEventListener("click", async () => {
    resend.disabled = true;
    try {
      const answer = await app.api.post("auth/verify-email/resend");
      showOk(outcome, answer.sent ? `A new link was mailed to ${answer.email}.` : `${answer.email} is verified.`);
    } catch (error) {
      showError(outcome, error);
    }
    resend.disabled = false;
  });
  const notice = h("p", {class: "hint", id: "verification-notice", role: "note"},
    "Your e-mail address is not verified yet: a workspace you signed up launches runs once you open the link "
    + "we mailed you. ", resend, " ", outcome);
  return replace(h("div", {class: "verification"}), notice);
}
