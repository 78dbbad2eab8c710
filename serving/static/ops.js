// The /ops page: curves, current policy, simulate and save, history, drift and win rate by grade.
// The API key lives in sessionStorage (this tab only) and is sent as a Bearer token; the name
// typed in "Your name" goes with every change as X-Actor, and the history shows it.
"use strict";

const KEY_ITEM = "leadscore-api-key";
const ACTOR_ITEM = "leadscore-actor";
const state = { current: null, simulation: null, chosen: null };

// What each measure means, in plain words: shown as the tooltip of every element that names it
// (data-measure="..."), in tables, labels and sentences alike.
const MEASURES = {
  threshold: "The sales threshold: leads scoring at or above it go to sales. A score is the " +
    "win chance in percent (a score of 30: about 30 in 100 such leads win).",
  leads_per_week: "How many leads a week this threshold would send to sales.",
  expected_wins: "Expected wins: how many of the leads sent each week end up as won deals " +
    "(counted on the holdout, or estimated from the scores on recent leads).",
  precision: "Precision: of the leads sent to sales, the share that win. 40% means 4 in 10 " +
    "leads sent become customers.",
  recall: "Recall: of all the leads that win, the share that is sent to sales. 80% means 2 " +
    "in 10 future customers would not reach sales.",
  lift: "Lift: how many times better than sending every lead. 2.0 means the leads sent win " +
    "twice as often as leads on average.",
  net_value: "Net value a week: wins a week times what a won deal is worth, minus leads a " +
    "week times what working a lead costs.",
  capacity: "How many leads a week sales can work. Choosing by value never sends more.",
  psi: "Population stability index (PSI): how far this period's scores have moved from the " +
    "scores the model was tested on. Below 0.1: stable; 0.1-0.25: watch; above 0.25: the " +
    "leads have changed, check the model.",
  grade: "Grade A-D of a lead's score, set by the policy: by share of leads (A the top " +
    "quarter...) or by score (A from a given win chance).",
  win_rate: "Win rate: of the leads of a grade with a reported outcome, the share that won. " +
    "A lead counts with the grade of its latest score before its deal closed.",
  outcomes: "Leads whose deal the CRM reported as won or lost (POST /v1/outcomes) and that " +
    "were scored before it closed.",
  expected_revenue: "Expected revenue a week: what the leads sent each week are worth, adding " +
    "up each lead's expected value (its win chance times the deal amount expected if it wins).",
  expected_value: "Expected value of a lead: its win chance times the deal amount expected if " +
    "it wins. A 20% chance at a 10,000 deal is worth 2,000.",
  rank_by: "What decides who goes to sales when capacity is short: the win chance (score), or " +
    "the expected value, so a likely small deal can give way to a bigger one.",
  value_threshold: "Leads whose expected value is at least this amount go to sales. Left " +
    "empty, the amount that fills the leads a week sales can take is chosen on the holdout.",
  win_within_30d: "Chance that the lead is won within 30 days (the average over the grade's " +
    "leads).",
  win_within_60d: "Chance that the lead is won within 60 days.",
  win_within_90d: "Chance that the lead is won within 90 days.",
  median_days_to_close: "Days until a won deal closes, for half of such leads: the median of " +
    "the grade's leads.",
  grade_share: "Share of the holdout's leads that get this grade under the policy in force.",
  holdout_win_rate: "Win rate on the model's holdout: of the grade's held-out leads, the share " +
    "that won.",
  grid: "The fit letter (A best fit, from who the lead is) and the engagement digit (1 most " +
    "engaged, from what the lead did), each by quarters of leads: A1 is the right company and " +
    "very active, A4 the right company and silent.",
  fit: "Fit: how often leads like this one (company, role, country...) win, whatever they did.",
  engagement: "Engagement: how often leads that did what this one did (visits, emails, " +
    "events...) win, whoever they are.",
};

const $ = (id) => document.getElementById(id);

function apiKey() {
  return sessionStorage.getItem(KEY_ITEM) || "";
}

function actor() {
  return sessionStorage.getItem(ACTOR_ITEM) || "";
}

function explainMeasures(root) {
  for (const el of (root || document).querySelectorAll("[data-measure]")) {
    const text = MEASURES[el.dataset.measure];
    if (!text) continue;
    el.title = text;
    el.classList.add("measure");
    if (!el.hasAttribute("tabindex")) el.tabIndex = 0;
  }
}

async function api(method, path, body) {
  const headers = { Authorization: "Bearer " + apiKey() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && actor()) headers["X-Actor"] = actor();
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try {
    data = await response.json();
  } catch (_) {
    data = { detail: response.statusText };
  }
  if (!response.ok) {
    const error = new Error((data && data.detail) || response.statusText);
    error.status = response.status;
    throw error;
  }
  return data;
}

function say(text, kind) {
  const box = $("message");
  box.textContent = text;
  box.className = kind || "";
}

function fmt(value, digits) {
  return value === null || value === undefined ? "-" : Number(value).toFixed(digits);
}

function pct(value) {
  return value === null || value === undefined ? "-" : (100 * value).toFixed(1) + "%";
}

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function money(value) {
  const currency = state.current ? state.current.policy.currency : "EUR";
  return value === null || value === undefined ? "-" : fmt(value, 2) + " " + currency;
}

function amount(value) {
  return value === null || value === undefined ? "-" : Number(value).toLocaleString("en-US", {
    minimumFractionDigits: 2, maximumFractionDigits: 2,
  });
}

function gradeWords(grades) {
  if (grades.by === "share") {
    const s = grades.shares || { A: 0.25, B: 0.25, C: 0.25 };
    const p = (x) => +(100 * x).toFixed(1) + "%";
    return "by share of leads: A top " + p(s.A) + " (score ≥ " + grades.A + "), B next " +
      p(s.B) + " (≥ " + grades.B + "), C next " + p(s.C) + " (≥ " + grades.C + "), D the rest" +
      (grades.basis ? "; computed on the " + grades.basis : "");
  }
  return "by score: A ≥ " + grades.A + ", B ≥ " + grades.B + ", C ≥ " + grades.C + ", D below";
}

function who(version) {
  return version.created_by + (version.actor ? " (" + version.actor + ")" : "");
}

// --- current policy and history ------------------------------------------------------------------

function showCurrent(current) {
  state.current = current;
  const p = current.policy;
  const followsModel = current.source === "model default";
  const rows = [
    ["version", current.version + (current.version === 0
      ? " (the model's default)"
      : followsModel ? " (the model's default, restored)" : "")],
    ["sales", p.rank_by === "expected_value"
      ? "expected value ≥ " + amount(p.value_threshold) + " " + p.currency + " (ranked by expected value)"
      : "score ≥ " + p.sales_threshold],
    ["nurture", "score ≥ " + p.nurture_threshold + " (below: disqualify)"],
    ["grades", gradeWords(p.grades)],
    ["hard rules", p.rules.map((r) => r.fact + " → " + r.decision).join("; ") || "none"],
    ["capacity", p.weekly_capacity ? p.weekly_capacity + " leads a week" : "not set"],
    ["currency", p.currency],
    ["exploration", p.exploration_rate > 0
      ? fmt(100 * p.exploration_rate, 1) + "% of held-back leads go to sales, to measure what the threshold misses"
      : "off"],
    ["trend", "improving or declining from ±" + p.trend_points + " points"],
  ];
  if (current.version > 0) {
    rows.push(["set by", who(current) + " at " + current.created_at.slice(0, 19).replace("T", " ")]);
    rows.push(["why", current.reason]);
  }
  const dl = $("current-policy");
  dl.replaceChildren();
  for (const [term, text] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.textContent = text;
    dd.dataset.field = term.replace(" ", "-");
    if (term === "grades") dt.dataset.measure = "grade";
    if (term === "capacity") dt.dataset.measure = "capacity";
    dl.append(dt, dd);
  }
  explainMeasures(dl);
  $("sales-threshold").value = p.sales_threshold;
  $("nurture-threshold").value = p.nurture_threshold;
  $("policy-rank-by").value = p.rank_by || "probability";
  $("rank-by").value = p.rank_by || "probability";  // simulate as the policy in force ranks
  $("value-threshold").value = p.value_threshold === null || p.value_threshold === undefined
    ? "" : p.value_threshold;
  showValueThreshold();
  $("grade-by").value = p.grades.by;
  showGradeInputs(p.grades);
  if (p.weekly_capacity && !$("capacity").value) $("capacity").value = p.weekly_capacity;
  for (const el of document.querySelectorAll(".currency")) el.textContent = p.currency;
  $("currency").value = p.currency;
  $("exploration-rate").value = +(100 * (p.exploration_rate || 0)).toFixed(4);
  $("trend-points").value = p.trend_points;
  $("restore-default-box").hidden = followsModel;
  updateValueLabel();
}

function showValueThreshold() {
  $("value-threshold-box").hidden = $("policy-rank-by").value !== "expected_value";
}

function showGradeInputs(grades) {
  const byShare = $("grade-by").value === "share";
  const shares = grades && grades.shares ? grades.shares : { A: 0.25, B: 0.25, C: 0.25 };
  for (const g of ["A", "B", "C"]) {
    $("grade-" + g.toLowerCase() + "-label").textContent = byShare
      ? g + ": % of leads" : g + ": lowest score";
    if (grades) {
      $("grade-" + g.toLowerCase()).value = byShare && grades.by === "share"
        ? +(100 * shares[g]).toFixed(2)
        : byShare ? 25 : grades.by === "score" ? grades[g] : "";
    }
  }
}

async function loadHistory() {
  const data = await api("GET", "/v1/policy/history?limit=50");
  const body = $("history").querySelector("tbody");
  body.replaceChildren();
  for (const v of data.versions) {
    const row = document.createElement("tr");
    row.dataset.version = v.version;
    cell(row, v.version, "num");
    cell(row, v.created_at.slice(0, 19).replace("T", " "));
    cell(row, who(v));
    cell(row, v.action === "restore_default" ? "restore the model's default"
      : v.action + (v.restored_version !== null ? " to " + v.restored_version : ""));
    cell(row, v.changes.join("; ") || "(no change)");
    cell(row, v.reason);
    const td = cell(row, "");
    if (v.version !== data.current_version) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "secondary";
      button.textContent = "Restore";
      button.addEventListener("click", () => restore(v.version));
      td.appendChild(button);
    }
    body.appendChild(row);
  }
  if (!data.versions.length) {
    const row = document.createElement("tr");
    cell(row, "No change saved yet: the model's default policy is in force.").colSpan = 7;
    body.appendChild(row);
  }
}

async function restore(version) {
  const reason = window.prompt("Why restore version " + version + "?");
  if (!reason) return;
  try {
    const saved = await api("POST", "/v1/policy/rollback", {
      version, reason, expected_version: state.current ? state.current.version : null,
    });
    say("Restored version " + version + " as version " + saved.version + ".", "ok");
    showCurrent(saved);
    await Promise.all([loadHistory(), simulate()]);
  } catch (error) {
    say("Could not restore: " + error.message, "error");
  }
}

async function restoreDefault() {
  const reason = window.prompt("Why go back to the model's own default policy?");
  if (!reason) return;
  try {
    const saved = await api("POST", "/v1/policy/restore-default", {
      reason, expected_version: state.current ? state.current.version : null,
    });
    say("The model's default policy is in force again, as version " + saved.version +
      "; it now follows the model.", "ok");
    showCurrent(saved);
    await Promise.all([loadHistory(), simulate()]);
  } catch (error) {
    say("Could not restore the model's default: " + error.message, "error");
  }
}

// --- simulation and curves -------------------------------------------------------------------------

function simulationRequest() {
  const by = $("by").value;
  const raw = $("value").value;
  const rankBy = $("rank-by").value;
  const body = { source: $("source").value, days: Number($("days").value) || 28, rank_by: rankBy };
  if (by === "threshold") {
    if (raw !== "") body.threshold = Number(raw);
  } else {
    body.by = by;
    // ranked by expected value, each lead is worth its own: no value of a win to give
    if (!(rankBy === "expected_value" && by === "value")) body.value = raw === "" ? null : Number(raw);
    if (by === "value") {
      body.cost_per_lead = Number($("cost").value) || 0;
      if ($("capacity").value !== "") body.capacity = Number($("capacity").value);
    }
  }
  return body;
}

async function simulate() {
  const data = await api("POST", "/v1/policy/simulate", simulationRequest());
  state.simulation = data;
  state.chosen = data.chosen;
  $("basis").textContent = "Simulated on the " + data.basis.description + ".";
  const body = $("simulation").querySelector("tbody");
  body.replaceChildren();
  const rows = [["now (v" + data.current.version + ")", data.current]];
  if (data.chosen) rows.push(["chosen", data.chosen]);
  for (const [label, r] of rows) {
    const row = document.createElement("tr");
    row.dataset.row = label === "chosen" ? "chosen" : "current";
    cell(row, label);
    cell(row, thresholdWords(r), "num").dataset.field = "threshold";
    cell(row, fmt(r.leads_per_week, 1), "num").dataset.field = "leads_per_week";
    cell(row, fmt(r.expected_wins, 2), "num").dataset.field = "expected_wins";
    cell(row, amount(r.expected_revenue), "num").dataset.field = "expected_revenue";
    cell(row, pct(r.precision), "num").dataset.field = "precision";
    cell(row, pct(r.recall), "num").dataset.field = "recall";
    cell(row, fmt(r.lift, 2), "num").dataset.field = "lift";
    body.appendChild(row);
  }
  const net = $("net-value");
  net.replaceChildren();
  if (data.chosen && data.chosen.net_value_per_week !== undefined) {
    const term = document.createElement("span");
    term.dataset.measure = "net_value";
    term.textContent = "Net value a week";
    net.append(term, " at the chosen threshold: " + fmt(data.chosen.net_value_per_week, 2) + " " +
      data.currency + (data.weekly_capacity
        ? ", sending at most " + data.weekly_capacity + " leads a week (sales capacity)"
        : " (no capacity limit: set the leads a week sales can take)"));
    explainMeasures(net);
  }
  showRankings(data);
  if (data.proposed_policy) {
    const proposed = data.proposed_policy;
    $("policy-rank-by").value = proposed.rank_by || "probability";
    if (proposed.rank_by === "expected_value") {
      $("value-threshold").value = proposed.value_threshold;
      if (proposed.weekly_capacity) $("capacity").value = proposed.weekly_capacity;
    } else {
      $("sales-threshold").value = proposed.sales_threshold;
      $("nurture-threshold").value = proposed.nurture_threshold;
    }
    showValueThreshold();
  }
  drawCurves(data);
}

// A row's threshold: a score, or (ranked by expected value) the lowest expected value sent.
function thresholdWords(r) {
  if (r.threshold !== null && r.threshold !== undefined) return String(r.threshold);
  return "value ≥ " + amount(r.value_threshold);
}

// Both rankings filling the same leads a week, in one sentence each.
function showRankings(data) {
  const box = $("rankings");
  box.replaceChildren();
  const r = data.rankings;
  if (!r) {
    if (!data.basis.expected_values) {
      box.textContent = "No expected revenue: " + (data.basis.source === "recent"
        ? "recent scores do not record an expected value; simulate on the holdout."
        : "the model has no deal value model (train it with deal amounts).");
    }
    return;
  }
  const term = document.createElement("span");
  term.dataset.measure = "expected_revenue";
  term.textContent = "expected revenue";
  const words = (row) => row === null ? "no threshold fits" : fmt(row.leads_per_week, 1) +
    " leads, " + fmt(row.expected_wins, 2) + " wins and " + amount(row.expected_revenue) + " " +
    data.currency + " a week";
  const line = (id, head, row) => {
    const span = document.createElement("span");
    span.id = id;
    span.textContent = head + words(row);
    return span;
  };
  box.append(
    "Filling " + fmt(r.leads_per_week, 1) + " leads a week, with ", term, ": ",
    line("rank-probability", "by probability ", r.probability), "; ",
    line("rank-value", "by expected value ", r.expected_value), ".",
  );
  explainMeasures(box);
}

function drawCurves(data) {
  const t = data.table;
  const wins = data.basis.observed_outcomes ? "wins a week (observed)" : "wins a week (expected)";
  const traces = [
    { x: t.threshold, y: t.leads_per_week, name: "leads a week to sales", mode: "lines" },
    { x: t.threshold, y: t.expected_wins, name: wins, mode: "lines" },
    { x: t.threshold, y: t.precision, name: "precision", mode: "lines", yaxis: "y2", line: { dash: "dot" } },
    { x: t.threshold, y: t.recall, name: "recall", mode: "lines", yaxis: "y2", line: { dash: "dash" } },
  ];
  // Score thresholds only: a value threshold has no place on the score axis.
  let lines = [{ x: data.current.threshold, text: "now", color: "#616e7c" }];
  if (data.chosen && data.chosen.threshold === data.current.threshold) lines[0].text = "now = chosen";
  else if (data.chosen) lines.push({ x: data.chosen.threshold, text: "chosen", color: "#2563eb" });
  lines = lines.filter((l) => l.x !== null && l.x !== undefined);
  // Margins grow to fit the labels (automargin), the legend sits above the plot and the
  // "now"/"chosen" marks inside it: nothing is cut at the chart's edges.
  const layout = {
    margin: { l: 10, r: 10, t: 40, b: 10 },
    xaxis: { title: { text: "sales threshold (score 0-100)" }, range: [0, 100], automargin: true },
    yaxis: { title: { text: "leads / wins a week" }, rangemode: "tozero", automargin: true },
    yaxis2: {
      title: { text: "precision / recall" }, overlaying: "y", side: "right", range: [0, 1.04],
      tickformat: ".0%", dtick: 0.2, automargin: true,
    },
    legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom" },
    shapes: lines.map((l) => ({
      type: "line", x0: l.x, x1: l.x, yref: "paper", y0: 0, y1: 1, line: { color: l.color, dash: "dot" },
    })),
    annotations: lines.map((l, i) => ({
      x: l.x, yref: "paper", y: 1 - 0.07 * i, text: l.text, showarrow: false, yanchor: "top",
      xanchor: l.x > 85 ? "right" : "left", bgcolor: "rgba(255,255,255,0.8)",
    })),
  };
  Plotly.react("curves", traces, layout, { displaylogo: false, responsive: true });
}

// --- monitoring ------------------------------------------------------------------------------------

async function loadMonitoring() {
  const data = await api("GET", "/v1/ops/monitoring?days=" + (Number($("days").value) || 28));
  const psi = $("psi");
  psi.replaceChildren();
  if (data.psi === null) {
    psi.textContent = data.psi_status;
  } else {
    const term = document.createElement("span");
    term.dataset.measure = "psi";
    term.textContent = "Population stability index";
    psi.append(term, " " + data.psi.toFixed(3) + " over " + data.recent_leads +
      " leads scored in the last " + data.days + " days: " + data.psi_status + ".");
    explainMeasures(psi);
  }
  if (data.bins) {
    // scores (0-100) rather than probabilities: shorter labels, the unit sales knows
    const labels = data.bins.bin_low.map(
      (low, i) => Math.round(100 * low) + "-" + Math.round(100 * data.bins.bin_high[i]));
    Plotly.react("psi-chart", [
      { x: labels, y: data.bins.reference_share, name: "training holdout", type: "bar" },
      { x: labels, y: data.bins.recent_share, name: "recent scores", type: "bar" },
    ], {
      margin: { l: 10, r: 10, t: 30, b: 10 }, barmode: "group",
      xaxis: { title: { text: "score band (holdout tenths)" }, automargin: true, tickangle: 0 },
      yaxis: { title: { text: "share of leads" }, tickformat: ".0%", automargin: true },
      legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom" },
    }, { displaylogo: false, responsive: true });
  } else {
    Plotly.purge("psi-chart");
  }
  const body = $("win-rate").querySelector("tbody");
  body.replaceChildren();
  for (const g of data.win_rate_by_grade) {
    const row = document.createElement("tr");
    row.dataset.grade = g.grade;
    cell(row, g.grade);
    cell(row, g.leads, "num");
    cell(row, g.wins, "num");
    cell(row, pct(g.win_rate), "num");
    body.appendChild(row);
  }
  $("outcomes-note").textContent = outcomesNote(data);
  showGradeOutlook(data);
}

// What each grade holds on the model's holdout: share, win rate, value and time to close.
function showGradeOutlook(data) {
  const body = $("grade-outlook").querySelector("tbody");
  body.replaceChildren();
  const rows = data.holdout_by_grade || [];
  for (const g of rows) {
    const row = document.createElement("tr");
    row.dataset.grade = g.grade;
    cell(row, g.grade);
    cell(row, pct(g.share), "num").dataset.field = "share";
    cell(row, pct(g.win_rate), "num").dataset.field = "win_rate";
    cell(row, amount(g.expected_value), "num").dataset.field = "expected_value";
    for (const h of [30, 60, 90]) {
      cell(row, pct(g["win_within_" + h + "d"]), "num").dataset.field = "win_within_" + h + "d";
    }
    cell(row, fmt(g.median_days_to_close, 0), "num").dataset.field = "median_days_to_close";
    body.appendChild(row);
  }
  const parts = rows.length ? rows[0] : null;
  $("grade-outlook-note").textContent = !rows.length
    ? "No holdout to show: no model is loaded."
    : (parts.expected_value === undefined ? "No deal value model: no expected value. " : "") +
      (parts.median_days_to_close === undefined ? "No time-to-close model: no chances by day. " : "") +
      "Grades of the policy in force; amounts in " + data.currency + ".";
}

// --- fit and engagement grid (GET /v1/model) -------------------------------------------------------

async function loadGrid() {
  const model = await api("GET", "/v1/model");
  const body = $("grid").querySelector("tbody");
  body.replaceChildren();
  const fe = model.fit_engagement;
  if (!fe) {
    $("grid-note").textContent = "This model has no fit and engagement scores.";
    return;
  }
  const m = fe.metrics || {};
  for (const letter of ["A", "B", "C", "D"]) {
    const row = document.createElement("tr");
    row.dataset.fit = letter;
    cell(row, letter + (letter === "A" ? " (best fit)" : ""));
    for (const digit of ["1", "2", "3", "4"]) {
      const share = m["grid_" + letter + digit + "_share"];
      const rate = m["grid_" + letter + digit + "_win_rate"];
      const td = cell(row, pct(share) + " · " + (rate === undefined ? "no lead" : pct(rate) + " won"), "num");
      td.dataset.cell = letter + digit;
    }
    body.appendChild(row);
  }
  $("grid-note").textContent = "Each cell: the share of the holdout's leads in it · the share " +
    "of them that won. Scored leads carry their cell as `grid` (API, leadscore score, Spark).";
}

function outcomesNote(data) {
  const reported = data.outcomes_reported === undefined ? data.outcomes_known : data.outcomes_reported;
  if (!reported) {
    return "No outcome reported yet: win rates appear once the CRM posts closed deals to /v1/outcomes.";
  }
  const lead = (n) => n + (n === 1 ? " lead" : " leads");
  let text = reported + " outcome" + (reported === 1 ? "" : "s") + " reported; " +
    lead(data.outcomes_known) + " counted with the grade of their latest score before their deal closed.";
  const after = data.outcomes_scored_only_after_close || 0;
  const never = data.outcomes_never_scored || 0;
  if (after || never) {
    text += " Not counted: " + [
      after ? lead(after) + " scored only after closing" : "",
      never ? lead(never) + " never scored" : "",
    ].filter(Boolean).join(", ") + " (their grade says nothing about how they closed).";
  }
  return text;
}

// --- channels: the funnel report from the service's database ---------------------------------------

const channels = { data: null, sort: null, descending: true };
MEASURES.attribution = "How a lead is credited to its touchpoints up to its close: first touch " +
  "(the earliest), last touch (the latest) or linear (an equal share to every touch).";

function channelsQuery(format) {
  const params = new URLSearchParams({
    by: $("channels-by").value,
    attribution: $("channels-attribution").value,
  });
  if ($("channels-from").value) params.set("from", $("channels-from").value);
  if ($("channels-to").value) params.set("to", $("channels-to").value);
  if (format) params.set("format", format);
  return "/v1/reports/funnel?" + params.toString();
}

async function loadChannels() {
  const data = await api("GET", channelsQuery());
  channels.data = data;
  // The funnel's own words for each measure (features/report/measures.py, via the API).
  for (const m of data.measures) MEASURES["funnel_" + m.name] = m.description;
  MEASURES.funnel_win_rate += " In brackets: the " + MEASURES.funnel_win_rate_low.replace(
    "Lower end of the ", "").replace(" of the win rate.", " (Wilson).");
  drawChannels();
  const section = $("channels");
  explainMeasures(section);
  const linear = data.attribution === "linear";
  $("channels-note").textContent = data.rows.length
    ? (linear ? "Linear attribution: counts and revenue are fractional credits. " : "") +
      "Leads created " + (data.from ? "from " + data.from.slice(0, 10) + " " : "") +
      (data.to ? "before " + data.to.slice(0, 10) : data.from ? "" : "at any time") + "."
    : "No captured lead yet: score leads or send events with capture on.";
  $("channels-exploration").textContent = explorationNote(data.exploration);
}

// What the threshold misses among these leads (the answer's `exploration`), in one sentence.
function explorationNote(x) {
  if (!x || !x.explored) return "";
  const pct = (v) => (100 * v).toFixed(1) + "%";
  const head = "What the threshold misses: " + x.held_back + " leads held back (" +
    x.held_back_per_week.toFixed(1) + " a week), " + x.explored + " sent to sales by exploration (" +
    x.explored_won + " won, " + x.explored_lost + " lost, " + x.explored_open + " open)";
  if (x.win_rate === null) return head + "; none closed yet.";
  return head + ": win rate " + pct(x.win_rate) + " (95% CI " + pct(x.win_rate_low) + "-" +
    pct(x.win_rate_high) + "), about " + x.forgone_wins_per_week.toFixed(1) + " wins a week " +
    "forgone (" + x.forgone_wins_per_week_low.toFixed(1) + "-" +
    x.forgone_wins_per_week_high.toFixed(1) + ").";
}

function sortedRows() {
  const rows = channels.data.rows.slice();
  const key = channels.sort;
  if (!key) return rows;
  const by = channels.data.by;
  const value = (r) => (key === "group" ? r[by] : r[key]);
  const sign = channels.descending ? -1 : 1;
  return rows.sort((a, b) => {
    const x = value(a);
    const y = value(b);
    if (x === null || x === undefined) return y === null || y === undefined ? 0 : 1;  // empty last
    if (y === null || y === undefined) return -1;
    if (typeof x === "string") return sign * x.localeCompare(y);
    return sign * (x - y);
  });
}

function drawChannels() {
  const data = channels.data;
  const by = data.by;
  const linear = data.attribution === "linear";
  const count = (v) => (v === null || v === undefined ? "-" : linear ? fmt(v, 1) : String(Math.round(v)));
  const whole = (v) => (v === null || v === undefined ? "-" : Math.round(v).toLocaleString("en"));
  const fill = (row, r) => {
    cell(row, r[by]);
    cell(row, count(r.leads), "num").dataset.field = "leads";
    cell(row, count(r.sent_to_sales), "num").dataset.field = "sent_to_sales";
    cell(row, count(r.won), "num").dataset.field = "won";
    cell(row, count(r.lost), "num").dataset.field = "lost";
    cell(row, count(r.open), "num").dataset.field = "open";
    cell(row, r.win_rate === null ? "-" : pct(r.win_rate) + " (" + pct(r.win_rate_low) + "–" +
      pct(r.win_rate_high) + ")", "num").dataset.field = "win_rate";
    cell(row, whole(r.revenue_won), "num").dataset.field = "revenue_won";
    cell(row, whole(r.average_deal), "num").dataset.field = "average_deal";
    cell(row, fmt(r.median_days_to_close, 1), "num").dataset.field = "median_days_to_close";
    cell(row, fmt(r.p75_days_to_close, 1), "num").dataset.field = "p75_days_to_close";
  };
  const body = $("channels-table").querySelector("tbody");
  body.replaceChildren();
  for (const r of sortedRows()) {
    const row = document.createElement("tr");
    row.dataset.group = r[by];
    fill(row, r);
    body.appendChild(row);
  }
  const foot = $("channels-table").querySelector("tfoot");
  foot.replaceChildren();
  const total = document.createElement("tr");
  total.dataset.group = "(total)";
  fill(total, data.total);
  foot.appendChild(total);
  for (const th of $("channels-table").querySelectorAll("th[data-sort]")) {
    if (th.dataset.sort === channels.sort) th.setAttribute("aria-sort", channels.descending ? "descending" : "ascending");
    else th.removeAttribute("aria-sort");
  }
  $("channels-table").querySelector("th[data-sort='group']").textContent = by;

  // Charts in the report's order (most leads first), the same for every chart.
  const rows = data.rows;
  const x = rows.map((r) => r[by]);
  const base = (title, format) => ({
    margin: { l: 10, r: 10, t: 30, b: 10 },
    title: { text: title, font: { size: 13 }, x: 0, xanchor: "left" },
    xaxis: { automargin: true, type: "category" },
    yaxis: { automargin: true, rangemode: "tozero", tickformat: format || "" },
    showlegend: false,
  });
  const options = { displaylogo: false, responsive: true };
  Plotly.react("channel-volume", [
    { x, y: rows.map((r) => r.leads), type: "bar", name: "leads" },
  ], base("Leads" + (linear ? " (credited)" : "")), options);
  Plotly.react("channel-win-rate", [{
    x, y: rows.map((r) => r.win_rate), type: "bar", name: "win rate",
    error_y: {
      type: "data", symmetric: false,
      array: rows.map((r) => (r.win_rate === null ? 0 : r.win_rate_high - r.win_rate)),
      arrayminus: rows.map((r) => (r.win_rate === null ? 0 : r.win_rate - r.win_rate_low)),
    },
  }], { ...base("Win rate with its 95% interval", ".0%"), yaxis: { automargin: true, range: [0, 1.05], tickformat: ".0%" } }, options);
  Plotly.react("channel-revenue", [
    { x, y: rows.map((r) => r.revenue_won), type: "bar", name: "revenue won" },
  ], base("Revenue won"), options);
  Plotly.react("channel-days", [
    { x, y: rows.map((r) => r.median_days_to_close), type: "bar", name: "median" },
    { x, y: rows.map((r) => r.p75_days_to_close), type: "bar", name: "75th percentile" },
  ], { ...base("Days to close (median, 75th percentile)"), barmode: "group", showlegend: true,
       legend: { orientation: "h", x: 1, xanchor: "right", y: 1.02, yanchor: "bottom" } }, options);
}

async function downloadChannelsCsv() {
  const response = await fetch(channelsQuery("csv"), {
    headers: { Authorization: "Bearer " + apiKey(), Accept: "text/csv" },
  });
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail; } catch (_) { /* not a problem body */ }
    say("Could not download the CSV: " + detail, "error");
    return;
  }
  const blob = await response.blob();
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = "funnel-" + $("channels-by").value + "-" + $("channels-attribution").value + ".csv";
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

$("channels-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    await loadChannels();
  } catch (error) {
    say("Could not load the channels: " + error.message, "error");
  }
});
for (const id of ["channels-by", "channels-attribution"]) {
  $(id).addEventListener("change", () => $("channels-form").requestSubmit());
}
$("channels-csv").addEventListener("click", downloadChannelsCsv);
for (const th of $("channels-table").querySelectorAll("th[data-sort]")) {
  th.addEventListener("click", () => {
    if (!channels.data) return;
    channels.descending = channels.sort === th.dataset.sort ? !channels.descending : th.dataset.sort !== "group";
    channels.sort = th.dataset.sort;
    drawChannels();
  });
}

// --- wiring ----------------------------------------------------------------------------------------

async function loadAll() {
  if (!apiKey()) {
    say("Enter an API key: an ops key to change the policy, a scorer key to look.", "");
    return;
  }
  try {
    showCurrent(await api("GET", "/v1/policy"));
  } catch (error) {
    say((error.status === 401 ? "This key was refused: " : "Could not load: ") + error.message, "error");
    return;
  }
  // Each part loads on its own: no holdout yet (no model) must not hide the history.
  const parts = await Promise.allSettled([
    simulate(), loadHistory(), loadMonitoring(), loadChannels(), loadGrid(),
  ]);
  const failed = parts.filter((p) => p.status === "rejected").map((p) => p.reason.message);
  say(failed.length ? "Could not load everything: " + failed.join("; ") : "", failed.length ? "error" : "");
}

function updateValueLabel() {
  const by = $("by").value;
  const currency = state.current ? state.current.policy.currency : "EUR";
  const byValue = $("rank-by").value === "expected_value";
  $("value-label").textContent = {
    threshold: "Threshold (0-100)",
    capacity: "Leads a week sales can take",
    value: byValue
      ? "Not needed: each lead is worth its expected value (" + currency + ")"
      : "What a won deal is worth (" + currency + ")",
    precision: "Target precision (0-1)",
    recall: "Target recall (0-1)",
  }[by];
  $("value").disabled = byValue && by === "value";
  $("cost-box").hidden = by !== "value";
  $("capacity-box").hidden = by !== "value";
}

function gradeChange() {
  const by = $("grade-by").value;
  const p = state.current ? state.current.policy.grades : null;
  const values = ["a", "b", "c"].map((g) => $("grade-" + g).value);
  if (values.some((v) => v === "")) return null;
  const [A, B, C] = values.map(Number);
  if (by === "share") {
    const shares = { A: A / 100, B: B / 100, C: C / 100 };
    const old = p && p.by === "share" ? (p.shares || { A: 0.25, B: 0.25, C: 0.25 }) : null;
    const same = old && ["A", "B", "C"].every((g) => Math.abs(old[g] - shares[g]) < 1e-9);
    return same ? null : { by: "share", shares };
  }
  const same = p && p.by === "score" && p.A === A && p.B === B && p.C === C;
  return same ? null : { by: "score", A, B, C };
}

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const key = $("api-key").value.trim();
  if (key) sessionStorage.setItem(KEY_ITEM, key);
  $("api-key").value = "";
  loadAll();
});

$("forget-key").addEventListener("click", () => {
  sessionStorage.removeItem(KEY_ITEM);
  say("Key forgotten.", "");
});

$("actor").value = actor();
$("actor").addEventListener("change", () => {
  const name = $("actor").value.trim();
  if (name) sessionStorage.setItem(ACTOR_ITEM, name);
  else sessionStorage.removeItem(ACTOR_ITEM);
});

$("by").addEventListener("change", updateValueLabel);
$("rank-by").addEventListener("change", updateValueLabel);
$("policy-rank-by").addEventListener("change", showValueThreshold);

$("grade-by").addEventListener("change", () => {
  const p = state.current ? state.current.policy.grades : null;
  showGradeInputs(p && p.by === $("grade-by").value ? p : { by: $("grade-by").value, A: "", B: "", C: "" });
});

$("restore-default").addEventListener("click", restoreDefault);

$("simulate-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    await simulate();
    say("", "");
  } catch (error) {
    say("Could not simulate: " + error.message, "error");
  }
});

$("save-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const policy = {};
  if ($("sales-threshold").value !== "") policy.sales_threshold = Number($("sales-threshold").value);
  if ($("nurture-threshold").value !== "") policy.nurture_threshold = Number($("nurture-threshold").value);
  const grades = gradeChange();
  if (grades) policy.grades = grades;
  const capacity = $("capacity").value;
  const current = state.current ? state.current.policy : {};
  if (capacity !== "" && Number(capacity) !== current.weekly_capacity) {
    policy.weekly_capacity = Number(capacity);
  }
  const rankBy = $("policy-rank-by").value;
  if (rankBy !== (current.rank_by || "probability")) policy.rank_by = rankBy;
  const valueThreshold = $("value-threshold").value;
  if (rankBy === "expected_value" && valueThreshold !== "" &&
      Number(valueThreshold) !== current.value_threshold) {
    policy.value_threshold = Number(valueThreshold);
  }
  const currency = $("currency").value.trim().toUpperCase();
  if (currency && currency !== current.currency) policy.currency = currency;
  const exploration = $("exploration-rate").value;
  if (exploration !== "" && Number(exploration) / 100 !== current.exploration_rate) {
    policy.exploration_rate = Number(exploration) / 100;
  }
  const trendPoints = $("trend-points").value;
  if (trendPoints !== "" && Number(trendPoints) !== current.trend_points) {
    policy.trend_points = Number(trendPoints);
  }
  try {
    const saved = await api("PUT", "/v1/policy", {
      policy,
      reason: $("reason").value,
      expected_version: state.current ? state.current.version : null,
    });
    showCurrent(saved);
    $("reason").value = "";
    say("Saved policy version " + saved.version + "; every worker applies it within a second.", "ok");
    await Promise.all([loadHistory(), simulate()]);
  } catch (error) {
    say("Not saved: " + error.message, "error");
  }
});

explainMeasures();
updateValueLabel();
loadAll();
