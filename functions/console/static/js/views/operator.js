// The operator's view: every workspace's model + infrastructure cost this month against its price,
// the margin, and the workspaces near a monthly limit (GET /v1/admin/usage, SigV4-signed).

import {h, replace} from "../dom.js";
import {count, dollars, micro, percentOf, usd} from "../format.js";

const PAGE = 100;
const NEAR = 80;

function tokensOf(usage) {
  return usage.input_tokens + usage.output_tokens + usage.cache_write_tokens + usage.cache_read_tokens;
}

/** The monthly limits a row is measured against, each {used, limit, percent} (as the usage API counts them). */
function monthLimits(row) {
  const limits = row.limits || {};
  const measured = {};
  if (limits.tokens_per_month !== undefined) {
    const used = tokensOf(row.usage);
    measured.tokens_per_month = {used: count(used), limit: count(limits.tokens_per_month),
                                 percent: percentOf(used, limits.tokens_per_month)};
  }
  if (limits.budget_usd_per_month !== undefined) {
    const used = micro(row.model_cost_usd);
    const limit = micro(limits.budget_usd_per_month);
    measured.budget_usd_per_month = {used: usd(row.model_cost_usd), limit: usd(dollars(limit)),
                                     percent: percentOf(used, limit)};
  }
  return measured;
}

const money = (value) => h("data", {value, text: usd(value)});

export async function operatorView(app, view) {
  const {api} = app;
  const body = h("tbody", {id: "cost-rows"});
  const foot = h("tfoot");
  const near = h("ul", {id: "near-limit", class: "near"});
  const nearNote = h("p", {class: "hint"});
  const caption = h("caption");
  const more = h("button", {type: "button", class: "secondary", text: "Load more workspaces"});
  const rows = [];
  let cursor = null;
  let month = "";

  view.append(
    h("h1", {text: "Cost against price"}),
    h("section", {"aria-labelledby": "near-title"},
      h("h2", {id: "near-title", text: "Near a limit"}), nearNote, near),
    h("section", {"aria-labelledby": "cost-title"},
      h("h2", {id: "cost-title", text: "Every workspace this month"}),
      h("div", {class: "scroll"},
        h("table", {class: "data", id: "cost-table"}, caption,
          h("thead", {}, h("tr", {}, ["Workspace", "Tier", "Price", "Model cost", "Infrastructure cost", "Cost",
                                      "Margin", "Cost of price"].map((label) => h("th", {scope: "col", text: label})))),
          body, foot)),
      more));

  function render() {
    caption.textContent = `Month ${month}: model and infrastructure cost against each workspace's price`;
    replace(body, rows.map((row) => h("tr", {dataset: {workspace: row.workspace_id}},
      h("th", {scope: "row"}, h("span", {class: "name", text: row.name}), h("br"),
        h("code", {class: "id", text: row.workspace_id})),
      h("td", {class: "tier", text: row.tier}),
      h("td", {class: "num price"}, money(row.price_usd)),
      h("td", {class: "num model"}, money(row.model_cost_usd)),
      h("td", {class: "num infra"}, money(row.infra_cost_usd)),
      h("td", {class: "num cost"}, money(row.cost_usd)),
      h("td", {class: `num margin ${micro(row.margin_usd) < 0 ? "negative" : ""}`}, money(row.margin_usd)),
      h("td", {class: "num percent", text: row.cost_percent_of_price === null ? "—"
        : `${row.cost_percent_of_price}%`}))));
    const sum = (key) => dollars(rows.reduce((total, row) => total + micro(row[key]), 0));
    replace(foot, h("tr", {},
      h("th", {scope: "row", text: `${rows.length} workspaces`}), h("td"),
      h("td", {class: "num"}, money(sum("price_usd"))), h("td", {class: "num"}, money(sum("model_cost_usd"))),
      h("td", {class: "num"}, money(sum("infra_cost_usd"))), h("td", {class: "num"}, money(sum("cost_usd"))),
      h("td", {class: "num"}, money(sum("margin_usd"))), h("td")));

    const nearRows = rows.map((row) => ({row, limits: Object.entries(monthLimits(row))
      .filter(([, m]) => m.percent >= NEAR)})).filter(({limits}) => limits.length);
    nearNote.textContent = `Workspaces at ${NEAR}% or more of their monthly tokens or model budget, among the `
      + `${rows.length} loaded.`;
    replace(near, nearRows.length ? nearRows.map(({row, limits}) =>
      h("li", {dataset: {workspace: row.workspace_id}},
        h("strong", {text: row.name}), ` (${row.tier}): `,
        limits.map(([name, m], i) => [i ? "; " : "", h("span", {class: `limit ${m.percent >= 100 ? "over" : "near"}`,
          dataset: {limit: name, percent: m.percent.toFixed(1)},
          text: `${name === "tokens_per_month" ? "tokens" : "model budget"} ${m.percent.toFixed(1)}% `
            + `(${m.used} of ${m.limit})`})])))
      : h("li", {text: "None."}));
  }

  async function loadPage() {
    const page = await api.admin("GET", "admin/usage", {period: "month", limit: PAGE, cursor});
    month = page.month;
    rows.push(...page.items);
    cursor = page.next_cursor;
    more.hidden = !cursor;
    render();
  }
  more.addEventListener("click", () => loadPage());
  await loadPage();
}
