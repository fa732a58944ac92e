// Sign in: to a workspace (e-mail and password: POST /v1/auth/login), or as the operator
// (temporary AWS credentials that may call /v1/admin/…, used to sign each request; kept in memory).
//
// The console takes temporary credentials only (docs/security.md, "The console's credentials"): a
// session (a 15-minute access token and its refresh token, in memory, gone with the page) from an
// e-mail and password; never an API key (long-lived, the workspace's own: for programs) — one pasted
// into the form is refused before anything is sent; and for the operator, only an STS session (an
// ASIA… key with its session token, which expires), never an IAM user's long-lived AKIA… key.

import {field, h, messageArea, showError} from "../dom.js";

/** What a pasted long-lived secret looks like: an AgentHQ API key or refresh token. */
const AGENTHQ_SECRET = /(^|\s)ah[qr]_[A-Za-z0-9_-]{8,}/;
export const NOT_AN_API_KEY = "That is an API key: API keys are for programs (the CLI, your servers). The console "
  + "signs in with your e-mail and password only, and keeps nothing after the page is closed.";
export const NOT_LONG_LIVED = "These are long-lived access keys (AKIA…): the console takes temporary credentials "
  + "only — an ASIA… key with its session token (aws sts get-session-token, aws configure export-credentials, "
  + "or your SSO portal).";

function looksLikeAnApiKey(...values) {
  return values.some((value) => AGENTHQ_SECRET.test(value));
}

export async function signInView(app, view) {
  const email = h("input", {type: "email", name: "email", autocomplete: "username", required: true});
  const password = h("input", {type: "password", name: "password", autocomplete: "current-password",
                               required: true});
  const workspaceMessage = messageArea();
  const workspaceForm = h("form", {id: "sign-in", "aria-labelledby": "sign-in-title"},
    h("h2", {id: "sign-in-title", text: "Your workspace"}),
    field("E-mail", email),
    field("Password", password),
    h("button", {type: "submit", text: "Sign in"}),
    workspaceMessage);
  workspaceForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (looksLikeAnApiKey(email.value, password.value)) {
      password.value = "";
      showError(workspaceMessage, NOT_AN_API_KEY);
      return;
    }
    const button = workspaceForm.querySelector("button");
    button.disabled = true;
    workspaceMessage.textContent = "Signing in…";
    try {
      await app.api.login(email.value.trim(), password.value);
      password.value = "";
      await app.signedInToWorkspace();
    } catch (error) {
      app.api.session = null;
      showError(workspaceMessage, error.status === 401 ? "The e-mail or password is not right." : error);
      button.disabled = false;
    }
  });

  const accessKey = h("input", {type: "text", name: "access-key-id", autocomplete: "off", spellcheck: "false",
                                required: true, pattern: "[A-Z0-9]{16,128}"});
  const secret = h("input", {type: "password", name: "secret-access-key", autocomplete: "off", required: true});
  const token = h("input", {type: "password", name: "session-token", autocomplete: "off"});
  const region = h("input", {type: "text", name: "region", autocomplete: "off", required: true,
                             value: app.config.region || "us-east-1", pattern: "[a-z0-9-]+"});
  const operatorMessage = messageArea();
  const operatorForm = h("form", {id: "operator-sign-in", "aria-labelledby": "operator-title"},
    h("h2", {id: "operator-title", text: "Operator"}),
    h("p", {class: "hint", text: "Temporary AWS credentials allowed to call this API's /v1/admin routes. They sign "
      + "each request in this page and are never sent or stored: reloading the page forgets them."}),
    field("Access key ID", accessKey),
    field("Secret access key", secret),
    field("Session token", token),
    field("Region", region),
    h("button", {type: "submit", text: "Sign in as the operator"}),
    operatorMessage);
  operatorForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!/^ASIA/.test(accessKey.value.trim()) || !token.value.trim()) {
      secret.value = "";
      showError(operatorMessage, NOT_LONG_LIVED);
      return;
    }
    const button = operatorForm.querySelector("button");
    button.disabled = true;
    operatorMessage.textContent = "Checking the credentials…";
    const credentials = {accessKeyId: accessKey.value.trim(), secretAccessKey: secret.value.trim(),
                         sessionToken: token.value.trim() || null, region: region.value.trim()};
    app.api.operator = credentials;
    try {
      await app.api.admin("GET", "admin/workspaces", {limit: 1});
      secret.value = "";
      token.value = "";
      app.signedInAsOperator(credentials);
    } catch (error) {
      app.api.operator = null;
      showError(operatorMessage, error.status === 403
        ? "These credentials may not call the operator routes (or the secret or region is wrong)." : error);
      button.disabled = false;
    }
  });

  view.append(
    h("h1", {text: "Sign in to AgentHQ"}),
    h("div", {class: "columns"}, workspaceForm, operatorForm));
}
