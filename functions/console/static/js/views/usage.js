// Usage: a gauge per limit the workspace is held to (with the 80% and 100% marks), its alerts,
// and this month's daily series. It reads again when a run of the workspace changes status or an
// alert comes (live), so the gauges move while you watch.

import {dailyChart, DAILY_METRICS, gauge} from "../charts.js";
import {field, h, replace} from "../dom.js";
import {count, LIMIT_LABELS, micro, usd, when} from "../format.js";

function gaugeOf(name, entry) {
  const budget = name === "budget_usd_per_month";
  const used = budget ? micro(entry.used) / 1e6 : entry.used;
  const limit = budget ? micro(entry.limit) / 1e6 : entry.limit;
  const extra = [];
  if (entry.reserved && micro(entry.reserved) > 0) {
    extra.push(`${budget ? usd(entry.reserved) : count(entry.reserved)} reserved by model calls under way.`);
  }
  if (entry.queued) extra.push(`${count(entry.queued)} queued.`);
  if (entry.resets_at) extra.push(`Resets ${when(entry.resets_at)}.`);
  return gauge({name, label: LIMIT_LABELS[name] || name, used, limit, percent: entry.percent,
                unit: budget ? (n) => usd(n.toFixed(6)) : count, detail: extra.join(" ")});
}

export async function usageView(app, view) {
  const {api} = app;
  const gauges = h("div", {class: "gauges", id: "gauges"});
  const alertsBody = h("tbody", {id: "alerts"});
  const totals = h("dl", {class: "figures", id: "month-totals"});
  const chartBox = h("div", {id: "daily-chart"});
  const metric = h("select", {name: "metric"},
    Object.entries(DAILY_METRICS).map(([value, m]) => h("option", {value, text: m.label})));
  let daily = null;

  view.append(
    h("h1", {text: "Usage"}),
    h("section", {"aria-labelledby": "limits-title"},
      h("h2", {id: "limits-title", text: "Limits of your tier"}), gauges),
    h("section", {"aria-labelledby": "month-title"},
      h("h2", {id: "month-title", text: "This month"}), totals),
    h("section", {"aria-labelledby": "daily-title"},
      h("h2", {id: "daily-title", text: "Day by day"}), field("Show", metric), chartBox),
    h("section", {"aria-labelledby": "alerts-title"},
      h("h2", {id: "alerts-title", text: "Alerts"}),
      h("table", {class: "data"},
        h("caption", {class: "visually-hidden", text: "Usage alerts, newest first"}),
        h("thead", {}, h("tr", {}, ["When", "Limit", "Threshold", "Used", "Allowed"]
          .map((label) => h("th", {scope: "col", text: label})))),
        alertsBody)));

  function renderChart() {
    if (daily) replace(chartBox, dailyChart(daily.items, metric.value));
  }
  metric.addEventListener("change", renderChart);

  async function load() {
    const [summary, series, alerts] = await Promise.all([
      api.get(api.ws("usage"), {period: "month"}),
      api.get(api.ws("usage", "daily")),
      api.get(api.ws("alerts"), {limit: 20}),
    ]);
    replace(gauges, Object.entries(summary.limits).map(([name, entry]) => gaugeOf(name, entry)));
    const u = summary.usage;
    replace(totals,
      h("dt", {text: "Runs"}), h("dd", {text: count(u.runs)}),
      h("dt", {text: "Model calls"}), h("dd", {text: count(u.model_calls)}),
      h("dt", {text: "Tokens"}), h("dd", {text: count(u.input_tokens + u.output_tokens + u.cache_write_tokens
                                                      + u.cache_read_tokens)}),
      h("dt", {text: "Model cost"}), h("dd", {}, h("data", {value: u.model_cost_usd, text: usd(u.model_cost_usd)})),
      h("dt", {text: "Infrastructure cost"}), h("dd", {}, h("data", {value: u.infra_cost_usd,
                                                                    text: usd(u.infra_cost_usd)})),
      h("dt", {text: "Tool calls"}), h("dd", {text: count(u.tool_calls)}),
      h("dt", {text: "Agent time"}), h("dd", {text: `${count(u.agent_seconds)} s`}));
    daily = series;
    renderChart();
    replace(alertsBody, alerts.items.length ? alerts.items.map((alert) => {
      const budget = alert.limit === "budget_usd_per_month";
      const amount = (n) => (budget ? usd((n / 1e6).toFixed(6)) : count(n));
      return h("tr", {dataset: {alert: alert.id}},
        h("td", {text: when(alert.at)}), h("td", {text: LIMIT_LABELS[alert.limit] || alert.limit}),
        h("td", {text: `${alert.threshold_percent}%`}), h("td", {text: amount(alert.used)}),
        h("td", {text: amount(alert.allowed)}));
    }) : h("tr", {}, h("td", {colspan: 5, text: "No alerts: no limit has reached 80% this period."})));
  }
  await load();

  // Every change of the workspace, live: the page is read again (at most every 500 ms).
  app.onLeave(app.live.reloadOnWorkspace(load));
}
