#pragma once
// The admin listener's status page: plain HTML and a little JavaScript that reads /status.json every
// two seconds. No build step, no external file: it is served from this string.
#include <string_view>

namespace frontdoor::server {

inline constexpr std::string_view kStatusPage = R"html(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>frontdoor status</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
  h1 { font-size: 1.3em; margin: 0 0 .2em; }
  h2 { font-size: 1.05em; margin: 1.4em 0 .4em; }
  table { border-collapse: collapse; min-width: 30em; }
  th, td { text-align: left; padding: .25em .8em .25em 0; border-bottom: 1px solid #ddd; }
  td.n { text-align: right; font-variant-numeric: tabular-nums; }
  .bad { color: #b00020; font-weight: 600; } .good { color: #1b7a2b; }
  #summary span { margin-right: 1.5em; }
</style>
</head>
<body>
<h1>frontdoor <span id="version"></span></h1>
<div id="summary"><span id="ready"></span><span id="rate"></span><span id="generation"></span>
<span id="workers"></span><span id="updated"></span></div>
<h2>Upstream endpoints</h2>
<table id="endpoints"><thead><tr><th>endpoint</th><th>breaker</th><th>in flight</th><th>opened</th>
<th>rejected</th></tr></thead><tbody></tbody></table>
<h2>Manifests</h2>
<table id="manifests"><thead><tr><th>manifest</th><th>ejections</th><th>retries</th><th>retries refused</th>
</tr></thead><tbody></tbody></table>
<h2>Rate limits</h2>
<table id="limits"><thead><tr><th>limit</th><th>manifest</th><th>allowed</th><th>refused</th></tr></thead>
<tbody></tbody></table>
<h2>Caches</h2>
<p id="caches">Manifests come from the configuration's embedded defaults (no manifest store configured).</p>
<table id="tiers" hidden><thead><tr><th>tier</th><th>state</th><th>hits</th><th>misses</th><th>errors</th></tr></thead>
<tbody></tbody></table>
<h2>Reloads</h2>
<table id="reloads"><thead><tr><th>when</th><th>result</th><th>generation</th><th>details</th></tr></thead>
<tbody></tbody></table>
<script>
"use strict";
function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
}
function fill(id, rows, render) {
  const body = document.querySelector("#" + id + " tbody");
  body.replaceChildren();
  for (const r of rows) { const tr = document.createElement("tr"); render(tr, r); body.appendChild(tr); }
}
async function refresh() {
  try {
    const s = await (await fetch("/status.json", {cache: "no-store"})).json();
    document.getElementById("version").textContent = s.version;
    const ready = document.getElementById("ready");
    ready.textContent = s.ready ? "ready" : "draining";
    ready.className = s.ready ? "good" : "bad";
    document.getElementById("rate").textContent = s.requests_per_second.toFixed(1) + " req/s";
    document.getElementById("generation").textContent = "config generation " + s.generation;
    document.getElementById("workers").textContent = s.workers + " worker(s)";
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
    fill("endpoints", s.endpoints, (tr, e) => {
      cell(tr, e.endpoint);
      cell(tr, e.breakers_open > 0 ? "open on " + e.breakers_open + " worker(s)" : "closed",
           e.breakers_open > 0 ? "bad" : "good");
      cell(tr, e.in_flight, "n"); cell(tr, e.breaker_opened, "n"); cell(tr, e.breaker_rejected, "n");
    });
    fill("manifests", s.manifests, (tr, m) => {
      cell(tr, m.manifest); cell(tr, m.ejections, "n"); cell(tr, m.retries, "n"); cell(tr, m.retries_exhausted, "n");
    });
    fill("limits", s.rate_limits, (tr, l) => {
      cell(tr, l.limit); cell(tr, l.manifest || "(top level)"); cell(tr, l.allowed, "n"); cell(tr, l.refused, "n");
    });
    const st = s.manifest_store;
    if (st && st.configured) {
      document.getElementById("caches").textContent = "Manifest store: " + st.keys + " stored key(s), " + st.loaded +
          " in memory (" + st.loaded_bytes + " bytes); index from " + (st.index_source || "nowhere yet") + ".";
      document.getElementById("tiers").hidden = false;
      fill("tiers", st.tiers, (tr, t) => {
        cell(tr, t.tier); cell(tr, t.up ? "up" : "down", t.up ? "good" : "bad");
        cell(tr, t.hits, "n"); cell(tr, t.misses, "n"); cell(tr, t.errors, "n");
      });
    }
    fill("reloads", s.reloads, (tr, r) => {
      cell(tr, new Date(r.at_ms).toLocaleString());
      cell(tr, r.status, r.status === "reloaded" ? "good" : "bad");
      cell(tr, r.generation, "n");
      cell(tr, r.errors.concat(r.restart_needed.map(x => "restart needed: " + x)).join("; "));
    });
  } catch (e) {
    document.getElementById("updated").textContent = "cannot read /status.json: " + e;
  }
}
refresh();
setInterval(refresh, 2000);
</script>
</body>
</html>
)html";

}  // namespace frontdoor::server
