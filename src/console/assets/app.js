// The eventlake console's page: plain DOM and fetch, no framework. Every call
// carries the token of the URL the console printed; charts are uPlot's.

const token = new URLSearchParams(location.search).get("token") || "";
const $ = (id) => document.getElementById(id);

async function api(path, body) {
  const options = { headers: { "x-eventlake-token": token } };
  if (body !== undefined) {
    options.method = "POST";
    options.headers["content-type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error || message; } catch (_) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

function showError(error) {
  const box = $("error");
  box.textContent = error ? String(error.message || error) : "";
  box.hidden = !error;
}

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  if (className) node.className = className;
  return node;
}

const number = (n) => Number(n).toLocaleString("en-US");
function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function figure(value, label) {
  const box = element("div", null, "figure");
  box.append(element("b", value), element("span", label));
  return box;
}

function fillTable(table, header, rows) {
  table.replaceChildren();
  const head = table.createTHead().insertRow();
  for (const [text, numeric] of header) head.append(element("th", text, numeric ? "number" : ""));
  const body = table.createTBody();
  for (const cells of rows) {
    const row = body.insertRow();
    for (const cell of cells) row.append(cell instanceof Node ? cell : element("td", cell));
  }
}

// --- panels -------------------------------------------------------------------

const panels = ["lake", "live", "query", "rejected", "trace"];
function showPanel(name) {
  if (!panels.includes(name)) name = "lake";
  for (const panel of panels) $(panel).hidden = panel !== name;
  for (const link of document.querySelectorAll("nav a")) link.classList.toggle("active", link.dataset.panel === name);
  if (name === "lake") loadLake().catch(showError);
  if (name === "rejected") loadRejected().catch(showError);
}
window.addEventListener("hashchange", () => showPanel(location.hash.slice(1)));

// --- lake ---------------------------------------------------------------------

async function loadLake() {
  const lake = await (await api("/api/lake")).json();
  $("lake-path").textContent = lake.lake;
  const types = [...new Set(lake.partitions.map((p) => p.event_type))].sort();
  const days = [...new Set(lake.partitions.map((p) => p.created_date))].sort();
  const cells = new Map(lake.partitions.map((p) => [`${p.event_type}/${p.created_date}`, p]));
  const total = (key) => lake.partitions.reduce((sum, p) => sum + (p[key] ?? 0), 0);
  const rejected = Object.values(lake.rejected).reduce((a, b) => a + b, 0);
  $("lake-figures").replaceChildren(
    figure(number(types.length), "event types"),
    figure(number(lake.partitions.length), "partitions"),
    figure(number(total("rows")), "rows"),
    figure(number(total("files")), "files"),
    figure(bytes(total("bytes")), "Parquet"),
    figure(number(lake.small_file_partitions), "partitions to compact"),
    figure(number(rejected), "rejected records"),
  );
  fillTable($("lake-types"), [["event type"], ...days.map((d) => [d, true])], types.map((type) => [
    element("td", type),
    ...days.map((day) => {
      const p = cells.get(`${type}/${day}`);
      if (!p) return element("td", "·", "number empty");
      const cell = element("td", p.rows === null ? "?" : number(p.rows), "number");
      cell.title = `${p.files} files, ${bytes(p.bytes)}` + (p.rows === null ? "; rows not counted yet (eventlake views)" : "");
      return cell;
    }),
  ]));
  fillTable($("lake-rejected"), [["reason"], ["records", true]],
    Object.entries(lake.rejected).map(([code, n]) => [element("td", code), element("td", number(n), "number")]));
  $("lake-compaction").textContent = lake.last_compaction
    ? `Last compaction: ${lake.last_compaction}.`
    : "No compaction has run on this lake yet (eventlake compact --lake DIR).";
}

// --- query --------------------------------------------------------------------

let chart = null;

async function loadReadyQueries() {
  const queries = await (await api("/api/queries")).json();
  const box = $("ready-queries");
  box.replaceChildren(element("span", "Ready queries: ", "note"));
  for (const query of queries) {
    const button = element("button", query.name.replaceAll("_", " "));
    button.type = "button";
    button.dataset.query = query.name;
    button.addEventListener("click", () => { $("query-editor").value = query.sql; runQuery(); });
    box.append(button);
  }
}

async function runQuery() {
  const sql = $("query-editor").value;
  $("query-status").textContent = "running…";
  $("run-query").disabled = true;
  try {
    const result = await (await api("/api/query", { sql })).json();
    showError(null);
    const cut = result.truncated ? " (the first rows only: the result has more; export CSV or narrow it)" : "";
    $("query-status").textContent = `${number(result.row_count)} rows in ${number(result.elapsed_ms)} ms${cut}`;
    fillTable($("result-table"), result.columns.map((c) => [c.name, isNumeric(c.type)]),
      result.rows.map((row) => row.map((value, i) => element("td", value === null ? "NULL" : String(value),
        isNumeric(result.columns[i].type) ? "number" : ""))));
    drawChart(result);
  } catch (error) {
    $("query-status").textContent = "failed";
    showError(error);
  } finally {
    $("run-query").disabled = false;
  }
}

const isNumeric = (type) => /^(U?Int|Float|Decimal)/.test(type);
const isTime = (type) => /^(Timestamp|Date)/.test(type);

// A line for a time series (a time or date first column), bars for a label and
// numbers, nothing otherwise.
function drawChart(result) {
  const box = $("result-chart");
  if (chart) { chart.destroy(); chart = null; }
  box.replaceChildren();
  box.dataset.kind = "";
  const numeric = result.columns.map((c, i) => [c, i]).filter(([c]) => isNumeric(c.type));
  if (result.rows.length < 2 || numeric.length === 0 || numeric.length === result.columns.length) return;
  const first = result.columns[0];
  const timeSeries = isTime(first.type) || (/date|day|hour|minute/i.test(first.name) && !isNumeric(first.type)
    && result.rows.every((r) => r[0] !== null && !Number.isNaN(Date.parse(r[0]))));
  const width = Math.min(box.parentElement.clientWidth || 900, 1100);
  const palette = ["#2f6fde", "#e8590c", "#2b8a3e", "#ae3ec9", "#c92a2a", "#1098ad"];
  const series = numeric.filter(([, i]) => i !== 0).slice(0, 6);
  let xs, label;
  if (timeSeries) {
    const order = result.rows.map((r, i) => [Date.parse(r[0]) / 1000, i]).sort((a, b) => a[0] - b[0]);
    xs = order.map(([t]) => t);
    const data = [xs, ...series.map(([, c]) => order.map(([, i]) => result.rows[i][c]))];
    chart = new uPlot({ width, height: 260, series: [{}, ...series.map(([col], k) => ({ label: col.name, stroke: palette[k], width: 2 }))] }, data, box);
    box.dataset.kind = "line";
    return;
  }
  const rows = result.rows.slice(0, 50);
  label = rows.map((r) => String(r[0]));
  xs = rows.map((_, i) => i);
  const data = [xs, ...series.map(([, c]) => rows.map((r) => r[c]))];
  chart = new uPlot({
    width, height: 260,
    scales: { x: { time: false, range: [-0.5, rows.length - 0.5] } },
    axes: [{ values: (_, ticks) => ticks.map((t) => label[t] ?? ""), rotate: -30, size: 60 }, {}],
    series: [{}, ...series.map(([col], k) => ({
      label: col.name, fill: palette[k] + "aa", stroke: palette[k],
      paths: uPlot.paths.bars({ size: [0.8 / series.length, 60], align: 0 }), points: { show: false },
    }))],
  }, data, box);
  box.dataset.kind = "bars";
}

async function exportCsv() {
  try {
    const response = await api("/api/query.csv", { sql: $("query-editor").value });
    if (response.headers.get("x-eventlake-truncated") === "true") {
      $("query-status").textContent = "CSV: the first 1,000,000 rows only; the result has more";
    }
    const blob = await response.blob();
    const link = element("a");
    link.href = URL.createObjectURL(blob);
    link.download = "eventlake-query.csv";
    link.click();
    URL.revokeObjectURL(link.href);
  } catch (error) { showError(error); }
}

$("run-query").addEventListener("click", runQuery);
$("export-csv").addEventListener("click", exportCsv);
$("query-editor").addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); runQuery(); } });

// --- live ---------------------------------------------------------------------

let rateChart = null;
const rateHistory = { times: [], byType: new Map() };

function renderLive(live) {
  $("live-target").textContent = live.target;
  const body = $("producers").tBodies[0];
  body.replaceChildren();
  for (const p of live.producers) {
    const row = body.insertRow();
    row.dataset.producer = p.id;
    row.dataset.state = p.state;
    row.dataset.states = p.states.join(",");
    const swatch = element("span", null, "swatch");
    swatch.style.background = p.colour;
    const stop = element("button", "Stop", "secondary");
    stop.type = "button";
    stop.disabled = p.state !== "running";
    stop.addEventListener("click", () => api(`/api/producers/${p.id}/stop`, {}).catch(showError));
    const cell = element("td");
    cell.append(stop);
    row.append(element("td"), element("td", `#${p.id} at ${number(p.rate)}/s`),
      stateCell(p),
      element("td", number(p.events), "number events"), element("td", number(p.rejected), "number"), cell);
    row.cells[0].append(swatch);
  }
  rateHistory.times.push(live.at / 1000);
  for (const [type, n] of Object.entries(live.rates)) {
    if (!rateHistory.byType.has(type)) rateHistory.byType.set(type, new Array(rateHistory.times.length - 1).fill(0));
  }
  for (const [type, values] of rateHistory.byType) values.push(live.rates[type] || 0);
  if (rateHistory.times.length > 120) {
    rateHistory.times.shift();
    for (const values of rateHistory.byType.values()) values.shift();
  }
  drawRates();
  if (live.consumer) renderConsumer(live.consumer);
}

// The state, and the states before it (running → shutting down → stopped).
function stateCell(producer) {
  const cell = element("td", producer.state, `state state-${producer.state.replace(" ", "-")}`);
  if (producer.states.length > 1) cell.append(element("small", ` (${producer.states.join(" → ")})`, "note"));
  if (producer.error) cell.append(element("div", producer.error, "note"));
  return cell;
}

function drawRates() {
  const box = $("rate-chart");
  const top = [...rateHistory.byType.entries()].sort((a, b) => b[1].reduce((x, y) => x + y, 0) - a[1].reduce((x, y) => x + y, 0)).slice(0, 8);
  if (top.length === 0 || $("live").hidden) return;
  const palette = ["#2f6fde", "#e8590c", "#2b8a3e", "#ae3ec9", "#c92a2a", "#1098ad", "#f08c00", "#5c940d"];
  const data = [rateHistory.times, ...top.map(([, v]) => v)];
  const key = top.map(([t]) => t).join(",");
  if (!rateChart || rateChart.key !== key) {
    if (rateChart) rateChart.destroy();
    box.replaceChildren();
    rateChart = new uPlot({ width: Math.min(box.parentElement.clientWidth || 900, 1100), height: 220,
      series: [{}, ...top.map(([type], k) => ({ label: type, stroke: palette[k], width: 2 }))] }, data, box);
    rateChart.key = key;
  } else {
    rateChart.setData(data);
  }
}

function renderConsumer(consumer) {
  $("consumer").hidden = false;
  $("consumer-figures").replaceChildren(
    figure(consumer.state, "state"), figure(number(consumer.events), "events read"),
    figure(number(consumer.max_lag_ms ?? 0) + " ms", "behind the newest record"));
  fillTable($("consumer-shards"), [["shard"], ["checkpoint: after sequence number"], ["finished"], ["lag ms", true]],
    consumer.shards.map((s) => [element("td", s.shard), element("td", s.after ?? "—"), element("td", s.finished ? "yes" : ""),
      element("td", s.lag_ms === null ? "" : number(s.lag_ms), "number")]));
  $("consumer-events").textContent = consumer.latest.join("\n");
}

function followLive() {
  const source = new EventSource(`/api/live?token=${encodeURIComponent(token)}`);
  source.onmessage = (message) => renderLive(JSON.parse(message.data));
  source.onerror = () => { source.close(); setTimeout(followLive, 2000); };
}

$("start-producer").addEventListener("click", () => {
  api("/api/producers", { rate: Number($("producer-rate").value) }).then(() => showError(null)).catch(showError);
});

// --- rejected -----------------------------------------------------------------

async function loadRejected() {
  const rejected = await (await api("/api/rejected")).json();
  const selected = new Set();
  const button = $("replay-selected");
  button.disabled = true;
  fillTable($("rejected-records"), [[""], ["reason"], ["record"], ["from"]], rejected.records.map((r) => {
    const box = element("input");
    box.type = "checkbox";
    box.value = r.id;
    box.addEventListener("change", () => {
      if (box.checked) selected.add(r.id); else selected.delete(r.id);
      button.disabled = selected.size === 0;
    });
    const pick = element("td");
    pick.append(box);
    return [pick, element("td", `${r.code}: ${r.reason}`), element("td", r.record, "record"), element("td", `${r.file}:${r.line}`)];
  }));
  $("replay-status").textContent = `${number(rejected.records.length)} of ${number(rejected.total)} records shown`;
  button.onclick = async () => {
    button.disabled = true;
    try {
      const result = await (await api("/api/replay", { ids: [...selected] })).json();
      $("replay-status").textContent = `replayed: ${number(result.added)} added, ${number(result.already)} already in the lake, ${number(result.still_rejected)} still rejected`;
      showError(null);
    } catch (error) { showError(error); }
  };
}

// --- trace --------------------------------------------------------------------

$("trace-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const box = $("trace-result");
  box.replaceChildren(element("p", "tracing…", "note"));
  try {
    const trace = await (await api(`/api/trace?event_uuid=${encodeURIComponent($("trace-uuid").value.trim())}`)).json();
    showError(null);
    box.replaceChildren();
    box.append(element("p", trace.summary));
    if (trace.copies.length) {
      const table = element("table");
      table.id = "trace-copies";
      fillTable(table, [["partition"], ["file"], ["row", true], ["ingested at"], ["kept by events_unique"]],
        trace.copies.map((c) => [element("td", c.partition), element("td", c.file), element("td", number(c.row), "number"),
          element("td", c.ingested_at ?? ""), element("td", c.first ? "yes" : "")]));
      box.append(table);
    }
    for (const r of trace.rejected) box.append(element("p", `Rejected in ${r.file}:${r.line}: ${r.code}: ${r.reason}`));
  } catch (error) { box.replaceChildren(); showError(error); }
});

// --- start --------------------------------------------------------------------

showPanel(location.hash.slice(1));
loadReadyQueries().catch(showError);
followLive();
