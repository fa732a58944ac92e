// The AgentHQ console: a page of the API's own origin (no build step, no framework).
// It reads config.json (where the WebSocket API is, which region operators sign for), then
// shows the view the location's hash names.

import {Api} from "./api.js";
import {approvalsView} from "./views/approvals.js";
import {h, replace} from "./dom.js";
import {Live} from "./live.js";
import {agentView} from "./views/agent.js";
import {healthView} from "./views/health.js";
import {mcpView} from "./views/mcp.js";
import {operatorView} from "./views/operator.js";
import {runView} from "./views/run.js";
import {runsView} from "./views/runs.js";
import {schedulesView} from "./views/schedules.js";
import {sessionView, sessionsView} from "./views/sessions.js";
import {signInView} from "./views/signin.js";
import {usageView} from "./views/usage.js";
import {verificationNotice, verifyEmailView} from "./views/verify.js";
import {webhooksView} from "./views/webhooks.js";

const ROUTES = [
  {pattern: /^#\/signin$/, view: signInView, mode: null, title: "Sign in"},
  {pattern: /^#\/health$/, view: healthView, mode: "any", title: "Health"},
  {pattern: /^#\/runs$/, view: runsView, mode: "workspace", title: "Agents and runs"},
  {pattern: /^#\/runs\/([0-9A-Za-z]+)$/, view: runView, mode: "workspace", title: "Run"},
  {pattern: /^#\/agents\/([0-9A-Za-z]+)$/, view: agentView, mode: "workspace", title: "Agent"},
  {pattern: /^#\/sessions$/, view: sessionsView, mode: "workspace", title: "Sessions"},
  {pattern: /^#\/sessions\/([0-9A-Za-z]+)$/, view: sessionView, mode: "workspace", title: "Session"},
  {pattern: /^#\/mcp$/, view: mcpView, mode: "workspace", title: "MCP servers"},
  {pattern: /^#\/usage$/, view: usageView, mode: "workspace", title: "Usage"},
  {pattern: /^#\/approvals$/, view: approvalsView, mode: "workspace", title: "Approvals"},
  {pattern: /^#\/schedules$/, view: schedulesView, mode: "workspace", title: "Schedules"},
  {pattern: /^#\/webhooks$/, view: webhooksView, mode: "workspace", title: "Webhooks"},
  {pattern: /^#\/operator$/, view: operatorView, mode: "operator", title: "Cost against price"},
  {pattern: /^#\/verify-email\/(ahv_[A-Za-z0-9_-]+)$/, view: verifyEmailView, mode: "any", title: "Verify your e-mail"},
];

const NAV = {
  workspace: [["#/runs", "Agents and runs"], ["#/sessions", "Sessions"], ["#/approvals", "Approvals"],
              ["#/schedules", "Schedules"], ["#/webhooks", "Webhooks"], ["#/mcp", "MCP servers"],
              ["#/usage", "Usage"], ["#/health", "Health"]],
  operator: [["#/operator", "Cost against price"], ["#/health", "Health"]],
  null: [["#/signin", "Sign in"], ["#/health", "Health"]],
};

class Console {
  constructor(config) {
    this.config = config;
    this.api = new Api(new URL("../", document.baseURI).href);
    this.api.onSignedOut = (reason) => this.signedOut(reason);
    this.mode = null; // null (signed out) | "workspace" | "operator"
    this.me = null;
    this.workspace = null;
    this.live = null;
    this.leaving = [];
    this.main = document.getElementById("main");
    this.announcer = document.getElementById("announcer");
    this.liveState = document.getElementById("live-state");
    document.getElementById("version").textContent = config.version ? `AgentHQ ${config.version}` : "";
    window.addEventListener("hashchange", () => {
      if (!location.hash || location.hash.startsWith("#/")) this.show();
    });
    // Leaving the page ends its session on the server too; a page restored from the back/forward cache
    // starts signed out.
    window.addEventListener("pagehide", () => this.api.endOnLeave());
    window.addEventListener("pageshow", (event) => {
      if (event.persisted && this.mode) this.signedOut("You were signed out when you left the page.");
    });
    document.querySelector(".skip-link").addEventListener("click", (event) => {
      event.preventDefault(); // "#main" is no view: move the focus, keep the hash
      this.main.focus();
    });
  }

  /** Say something to screen readers (and show it in the status line). */
  announce(text) {
    this.announcer.textContent = text;
  }

  /** Run `fn` when the view is left (unsubscribe, stop timers). */
  onLeave(fn) {
    this.leaving.push(fn);
  }

  go(hash) {
    if (location.hash === hash) this.show();
    else location.hash = hash;
  }

  home() {
    return this.mode === "workspace" ? "#/runs" : this.mode === "operator" ? "#/operator" : "#/signin";
  }

  async signedInToWorkspace() {
    const [me, workspace] = await Promise.all([this.api.get("me"), this.api.get(this.api.ws())]);
    this.mode = "workspace";
    this.me = me;
    this.workspace = workspace;
    this.live = new Live(this.api, this.config.live_url, {onState: (state) => this.showLiveState(state)});
    this.announce(`Signed in to ${workspace.name}.`);
    this.go("#/runs");
  }

  signedInAsOperator(credentials) {
    this.mode = "operator";
    this.api.operator = credentials;
    this.announce("Signed in as the operator.");
    this.go("#/operator");
  }

  async signOut() {
    const mode = this.mode;
    this.clearSession();
    if (mode === "workspace") await this.api.logout().catch(() => {});
    this.api.session = null;
    this.announce("Signed out.");
    this.go("#/signin");
  }

  signedOut(reason) {
    this.clearSession();
    this.go("#/signin");
    this.announce(reason);
  }

  clearSession() {
    if (this.live) this.live.close();
    this.live = null;
    this.mode = null;
    this.me = null;
    this.workspace = null;
    this.api.operator = null;
    this.showLiveState(null);
  }

  showLiveState(state) {
    const words = {connecting: "Live: connecting…", live: "Live", reconnecting: "Live: reconnecting…",
                   unavailable: "Live updates unavailable", closed: ""};
    this.liveState.textContent = state ? words[state] ?? "" : "";
    this.liveState.dataset.state = state || "";
  }

  renderHeader() {
    const nav = document.getElementById("nav");
    const current = location.hash.replace(/^(#\/[a-z]+).*/, "$1");
    replace(nav, h("ul", {}, NAV[this.mode].map(([href, label]) =>
      h("li", {}, h("a", {href, "aria-current": href === current ? "page" : null, text: label})))));
    const who = document.getElementById("who");
    if (this.mode === null) {
      replace(who);
      return;
    }
    const name = this.mode === "workspace"
      ? `${this.me.user.email} · ${this.workspace.name} (${this.workspace.tier})`
      : `Operator ${this.api.operator.accessKeyId} · ${this.api.operator.region}`;
    replace(who, h("span", {class: "who-name", text: name}), verificationNotice(this),
      h("button", {type: "button", class: "secondary", id: "sign-out", on: {click: () => this.signOut()}},
        "Sign out"));
  }

  async show() {
    for (const leave of this.leaving.splice(0)) leave();
    const hash = location.hash || this.home();
    const route = ROUTES.find((r) => r.pattern.test(hash));
    if (!route) {
      this.go(this.home());
      return;
    }
    if (route.mode !== "any" && route.mode !== this.mode) {
      this.go(this.home());
      return;
    }
    this.renderHeader();
    document.title = `${route.title} · AgentHQ console`;
    const params = hash.match(route.pattern).slice(1);
    const view = h("div", {class: "view"});
    replace(this.main, view);
    try {
      await route.view(this, view, ...params);
    } catch (error) {
      replace(view, h("h1", {tabindex: "-1", text: "Something went wrong"}),
        h("p", {class: "message error", role: "alert", text: error.message || String(error)}));
    }
    const heading = view.querySelector("h1");
    if (heading) {
      heading.setAttribute("tabindex", "-1");
      heading.focus({preventScroll: true});
    }
  }
}

async function start() {
  const response = await fetch("config.json", {cache: "no-store", credentials: "omit"});
  const config = await response.json();
  const app = new Console(config);
  await app.show();
}

start().catch((error) => {
  replace(document.getElementById("main"), h("h1", {text: "The console could not start"}),
    h("p", {class: "message error", role: "alert", text: String(error && error.message || error)}));
});
