// Sign in: to a workspace (e-mail and password: POST /v1/auth/login), or as the operator
// (an AWS access key that may call /v1/admin/…, used to sign each request; kept in memory).

import {field, h, messageArea, showError} from "../dom.js";

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
    h("p", {class: "hint", text: "AWS credentials allowed to call this API's /v1/admin routes. They sign each "
      + "request in this page and are never sent or stored: reloading the page forgets them."}),
    field("Access key ID", accessKey),
    field("Secret access key", secret),
    field("Session token (temporary credentials only)", token),
    field("Region", region),
    h("button", {type: "submit", text: "Sign in as the operator"}),
    operatorMessage);
  operatorForm.addEventListener("submit", async (event) => {
    event.preventDefault();
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
