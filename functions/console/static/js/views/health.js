// The health panel: GET /v1/health (no authentication) — each dependency's check and the version.

import {h, replace} from "../dom.js";

export async function healthView(app, view) {
  const panel = h("section", {class: "health", "aria-labelledby": "health-title", "aria-busy": "true"});
  const refresh = h("button", {type: "button", class: "secondary", text: "Check again"});
  view.append(h("h1", {text: "Health"}), panel, refresh);

  async function load() {
    panel.setAttribute("aria-busy", "true");
    let report;
    try {
      // 200 when everything is ok, 503 (with the same body) when a check is not: both are a report.
      const response = await fetch(app.api.url("health"), {cache: "no-store", credentials: "omit",
                                                          headers: {Accept: "application/json"}});
      report = await response.json();
    } catch (error) {
      report = {status: "unreachable", checks: {}, version: null};
    }
    const checks = Object.entries(report.checks || {});
    replace(panel,
      h("h2", {id: "health-title"}, "AgentHQ is ",
        h("strong", {id: "health-status", class: `status ${report.status === "ok" ? "ok" : "bad"}`,
                     text: report.status})),
      h("table", {class: "data"},
        h("caption", {text: "Dependencies"}),
        h("thead", {}, h("tr", {}, h("th", {scope: "col", text: "Check"}), h("th", {scope: "col", text: "State"}))),
        h("tbody", {}, checks.map(([name, state]) =>
          h("tr", {dataset: {check: name}}, h("th", {scope: "row", text: name}),
            h("td", {class: `status ${state === "ok" ? "ok" : "bad"}`, text: String(state)}))))),
      h("p", {text: `Version ${report.version ?? "unknown"} · checked ${new Date().toISOString().slice(11, 19)} UTC`}));
    panel.setAttribute("aria-busy", "false");
  }

  refresh.addEventListener("click", () => {
    load();
    app.announce("Health checked again.");
  });
  await load();
}
