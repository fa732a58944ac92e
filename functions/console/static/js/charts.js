// Gauges and the daily chart, drawn as SVG by hand (attributes only: the CSP allows no inline style).

import {h, s, uid} from "./dom.js";
import {count, micro, usd} from "./format.js";

const MARKS = [80, 100];

/**
 * A gauge of one limit: a meter (role="meter": value, min, max, and the value in words) with a bar
 * and marks at 80% and 100%. `used` and `limit` are numbers (dollars for the budget).
 */
export function gauge({name, label, used, limit, percent, unit, detail}) {
  const labelId = uid("gauge");
  const level = percent >= 100 ? "over" : percent >= 80 ? "near" : "ok";
  const words = `${unit(used)} of ${unit(limit)} (${percent.toFixed(1)}%)`;
  const width = Math.max(0, Math.min(percent, 100));
  const bar = s("svg", {class: "gauge-bar", viewBox: "0 0 100 10", preserveAspectRatio: "none",
                        "aria-hidden": "true", focusable: "false"},
    s("rect", {class: "track", x: 0, y: 0, width: 100, height: 10}),
    s("rect", {class: `fill ${level}`, x: 0, y: 0, width: width.toFixed(2), height: 10}),
    ...MARKS.map((mark) => s("line", {class: "mark", x1: mark === 100 ? 99.6 : mark, x2: mark === 100 ? 99.6 : mark,
                                      y1: 0, y2: 10, "vector-effect": "non-scaling-stroke"})));
  return h("div", {class: `gauge ${level}`, dataset: {limit: name, percent: percent.toFixed(1)}},
    h("div", {class: "gauge-head"},
      h("span", {class: "gauge-label", id: labelId, text: label}),
      h("span", {class: "gauge-value", text: words})),
    h("div", {class: "gauge-meter", role: "meter", "aria-labelledby": labelId, "aria-valuemin": 0,
              "aria-valuemax": limit, "aria-valuenow": used, "aria-valuetext": words}, bar,
      h("span", {class: "gauge-mark m80", "aria-hidden": "true", text: "80%"}),
      h("span", {class: "gauge-mark m100", "aria-hidden": "true", text: "100%"})),
    h("p", {class: "gauge-detail", text: [level === "over" ? "Limit reached." : level === "near"
      ? "Past 80% of the limit." : "", detail].filter(Boolean).join(" ")}));
}

export const DAILY_METRICS = {
  model_cost_usd: {label: "Model cost", value: (row) => micro(row.model_cost_usd) / 1e6, text: (row) => usd(row.model_cost_usd)},
  runs: {label: "Runs", value: (row) => row.runs, text: (row) => count(row.runs)},
  tokens: {label: "Tokens", value: tokens, text: (row) => count(tokens(row))},
  tool_calls: {label: "Tool calls", value: (row) => row.tool_calls, text: (row) => count(row.tool_calls)},
};

function tokens(row) {
  return row.input_tokens + row.output_tokens + row.cache_write_tokens + row.cache_read_tokens;
}

/** The daily series as a bar chart (one bar per day) with a caption; the same numbers as a table follow it. */
export function dailyChart(rows, metricName) {
  const metric = DAILY_METRICS[metricName];
  const width = 640;
  const height = 200;
  const left = 8;
  const bottom = 22;
  const top = 18;
  const values = rows.map(metric.value);
  const max = Math.max(...values, 0);
  const step = (width - left * 2) / Math.max(rows.length, 1);
  const titleId = uid("chart");
  const chart = s("svg", {class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-labelledby": titleId},
    s("title", {id: titleId, text: `${metric.label} per day, ${rows[0]?.date ?? ""} to ${rows.at(-1)?.date ?? ""}; `
      + `highest ${max ? metric.text(rows[values.indexOf(max)]) : "0"}`}),
    s("line", {class: "axis", x1: left, x2: width - left, y1: height - bottom, y2: height - bottom}),
    s("text", {class: "axis-label", x: left, y: 12, text: `max ${max ? metric.text(rows[values.indexOf(max)]) : "0"}`}));
  rows.forEach((row, index) => {
    const barHeight = max ? ((height - bottom - top) * values[index]) / max : 0;
    const x = left + index * step;
    chart.append(s("rect", {class: "bar", x: (x + step * 0.15).toFixed(2), width: (step * 0.7).toFixed(2),
                            y: (height - bottom - barHeight).toFixed(2), height: barHeight.toFixed(2)},
      s("title", {text: `${row.date}: ${metric.text(row)}`})));
    if (index % Math.ceil(rows.length / 8) === 0) {
      chart.append(s("text", {class: "axis-label", x: (x + step / 2).toFixed(2), y: height - 6,
                              "text-anchor": "middle", text: row.date.slice(5)}));
    }
  });
  const table = h("table", {class: "data"},
    h("caption", {text: `${metric.label} per day`}),
    h("thead", {}, h("tr", {}, h("th", {scope: "col", text: "Day"}), h("th", {scope: "col", text: metric.label}))),
    h("tbody", {}, rows.map((row) => h("tr", {}, h("th", {scope: "row", text: row.date}),
                                       h("td", {text: metric.text(row)})))));
  return h("figure", {class: "daily"}, chart,
    h("details", {}, h("summary", {text: "Show the numbers"}), table));
}
