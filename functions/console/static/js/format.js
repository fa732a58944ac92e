// How numbers, money and times read in the console. Money comes from the API as decimal strings
// of dollars with 6 places (integer micro-dollars): it is shown exactly, never rounded.

/** "0.004110" → "$0.00411", "49.000000" → "$49.00", "-0.004464" → "−$0.004464". */
export function usd(value) {
  if (value === null || value === undefined || value === "") return "—";
  let text = String(value);
  let sign = "";
  if (text.startsWith("-")) {
    sign = "−";
    text = text.slice(1);
  }
  const [whole, fraction = ""] = text.split(".");
  let cents = fraction.replace(/0+$/, "");
  if (cents.length < 2) cents = cents.padEnd(2, "0");
  return `${sign}$${Number(whole).toLocaleString("en-US")}.${cents}`;
}

/** A decimal string of dollars → integer micro-dollars. */
export function micro(value) {
  const text = String(value ?? "0");
  const negative = text.startsWith("-");
  const [whole, fraction = ""] = text.replace(/^[-+]/, "").split(".");
  const amount = Number(whole || "0") * 1_000_000 + Number((fraction + "000000").slice(0, 6));
  return negative ? -amount : amount;
}

/** Integer micro-dollars → a decimal string of dollars with 6 places. */
export function dollars(microDollars) {
  const negative = microDollars < 0;
  const abs = Math.abs(Math.round(microDollars));
  const text = `${Math.floor(abs / 1_000_000)}.${String(abs % 1_000_000).padStart(6, "0")}`;
  return negative ? `-${text}` : text;
}

export function count(value) {
  return Number(value ?? 0).toLocaleString("en-US");
}

/** `used` of `limit` as the usage API computes it: one decimal, rounded down; a limit of 0 reads 100. */
export function percentOf(used, limit) {
  if (!(limit > 0)) return 100;
  return Math.floor((used * 1000) / limit) / 10;
}

/** An ISO time as "2026-11-28 02:16:53 UTC" (the API's times are UTC). */
export function when(iso) {
  if (!iso) return "—";
  return `${String(iso).replace("T", " ").slice(0, 19)} UTC`;
}

/** A run's or workspace's id, shortened for tables (the full id is in the link's title). */
export function shortId(id) {
  return id ? `${id.slice(0, 6)}…${id.slice(-4)}` : "—";
}

export const LIMIT_LABELS = {
  runs_per_day: "Runs today",
  concurrent_runs: "Concurrent runs",
  tokens_per_month: "Tokens this month",
  budget_usd_per_month: "Model budget this month",
  max_agents: "Agents",
  schedules: "Schedules",
  pending_approvals: "Approvals pending",
  webhooks: "Webhooks",
};
