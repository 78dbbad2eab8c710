// The /ops page: curves, current policy, simulate and save, history, drift and win rate by grade.
// The API key lives in sessionStorage (this tab only) and is sent as a Bearer token.
"use strict";

const KEY_ITEM = "leadscore-api-key";
const state = { current: null, simulation: null, chosen: null };

const $ = (id) => document.getElementById(id);

function apiKey() {
  return sessionStorage.getItem(KEY_ITEM) || "";
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: Object.assign(
      { Authorization: "Bearer " + apiKey() },
      body === undefined ? {} : { "Content-Type": "application/json" },
    ),
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

// --- current policy and history ------------------------------------------------------------------

function showCurrent(current) {
  state.current = current;
  const p = current.policy;
  const rows = [
    ["version", current.version + (current.version === 0 ? " (the model's default)" : "")],
    ["sales", "score ≥ " + p.sales_threshold],
    ["nurture", "score ≥ " + p.nurture_threshold + " (below: disqualify)"],
    ["grades", "A ≥ " + p.grades.A + ", B ≥ " + p.grades.B + ", C ≥ " + p.grades.C + ", D below"],
    ["hard rules", p.rules.map((r) => r.fact + " → " + r.decision).join("; ") || "none"],
  ];
  if (current.version > 0) {
    rows.push(["set by", current.created_by + " at " + current.created_at.slice(0, 19).replace("T", " ")]);
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
    dl.append(dt, dd);
  }
  $("sales-threshold").value = p.sales_threshold;
  $("nurture-threshold").value = p.nurture_threshold;
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
    cell(row, v.created_by);
    cell(row, v.action + (v.restored_version !== null ? " to " + v.restored_version : ""));
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

// --- simulation and curves -------------------------------------------------------------------------

function simulationRequest() {
  const by = $("by").value;
  const raw = $("value").value;
  const body = { source: $("source").value, days: Number($("days").value) || 28 };
  if (by === "threshold") {
    if (raw !== "") body.threshold = Number(raw);
  } else {
    body.by = by;
    body.value = raw === "" ? null : Number(raw);
    if (by === "value") body.cost_per_lead = Number($("cost").value) || 0;
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
    cell(row, r.threshold, "num").dataset.field = "threshold";
    cell(row, fmt(r.leads_per_week, 1), "num").dataset.field = "leads_per_week";
    cell(row, fmt(r.expected_wins, 2), "num").dataset.field = "expected_wins";
    cell(row, pct(r.precision), "num").dataset.field = "precision";
    cell(row, pct(r.recall), "num").dataset.field = "recall";
    cell(row, fmt(r.lift, 2), "num").dataset.field = "lift";
    body.appendChild(row);
  }
  $("net-value").textContent =
    data.chosen && data.chosen.net_value_per_week !== undefined
      ? "Net value a week at the chosen threshold: " + fmt(data.chosen.net_value_per_week, 2)
      : "";
  if (data.proposed_policy) {
    $("sales-threshold").value = data.proposed_policy.sales_threshold;
    $("nurture-threshold").value = data.proposed_policy.nurture_threshold;
  }
  drawCurves(data);
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
  const lines = [{ x: data.current.threshold, text: "now", color: "#616e7c" }];
  if (data.chosen && data.chosen.threshold === data.current.threshold) lines[0].text = "now = chosen";
  else if (data.chosen) lines.push({ x: data.chosen.threshold, text: "chosen", color: "#2563eb" });
  const layout = {
    margin: { l: 50, r: 50, t: 10, b: 40 },
    xaxis: { title: { text: "sales threshold (score 0-100)" }, range: [0, 100] },
    yaxis: { title: { text: "leads / wins a week" }, rangemode: "tozero" },
    yaxis2: {
      title: { text: "precision / recall" }, overlaying: "y", side: "right", range: [0, 1.04],
      tickformat: ".0%", dtick: 0.2,
    },
    legend: { orientation: "h", y: -0.2 },
    shapes: lines.map((l) => ({
      type: "line", x0: l.x, x1: l.x, yref: "paper", y0: 0, y1: 1, line: { color: l.color, dash: "dot" },
    })),
    annotations: lines.map((l) => ({ x: l.x, yref: "paper", y: 1, text: l.text, showarrow: false, yanchor: "bottom" })),
  };
  Plotly.react("curves", traces, layout, { displaylogo: false, responsive: true });
}

// --- monitoring ------------------------------------------------------------------------------------

async function loadMonitoring() {
  const data = await api("GET", "/v1/ops/monitoring?days=" + (Number($("days").value) || 28));
  $("psi").textContent =
    data.psi === null
      ? data.psi_status
      : "Population stability index " + data.psi.toFixed(3) + " over " + data.recent_leads +
        " leads scored in the last " + data.days + " days: " + data.psi_status + ".";
  if (data.bins) {
    const labels = data.bins.bin_low.map((low, i) => fmt(low, 2) + "-" + fmt(data.bins.bin_high[i], 2));
    Plotly.react("psi-chart", [
      { x: labels, y: data.bins.reference_share, name: "training holdout", type: "bar" },
      { x: labels, y: data.bins.recent_share, name: "recent scores", type: "bar" },
    ], {
      margin: { l: 45, r: 10, t: 10, b: 60 }, barmode: "group",
      xaxis: { title: { text: "probability band (holdout deciles)" } },
      yaxis: { title: { text: "share of leads" }, tickformat: ".0%" },
      legend: { orientation: "h", y: -0.35 },
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
  $("outcomes-note").textContent = data.outcomes_known
    ? data.outcomes_known + " leads have a reported outcome (grade of their last score before closing)."
    : "No outcome reported yet: win rates appear once the CRM posts closed deals to /v1/outcomes.";
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
  const parts = await Promise.allSettled([simulate(), loadHistory(), loadMonitoring()]);
  const failed = parts.filter((p) => p.status === "rejected").map((p) => p.reason.message);
  say(failed.length ? "Could not load everything: " + failed.join("; ") : "", failed.length ? "error" : "");
}

function updateValueLabel() {
  const by = $("by").value;
  $("value-label").textContent = {
    threshold: "Threshold (0-100)",
    capacity: "Leads a week sales can take",
    value: "What a won deal is worth",
    precision: "Target precision (0-1)",
    recall: "Target recall (0-1)",
  }[by];
  $("cost-box").hidden = by !== "value";
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

$("by").addEventListener("change", updateValueLabel);

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

updateValueLabel();
loadAll();
