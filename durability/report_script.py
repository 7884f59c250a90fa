"""The script of the ``durability report`` page (inlined by ``report_html.py``).

It reads the report from the page's ``<script type="application/json"
id="report-data">`` block (the shape `durability.report.report_json`
gives), then renders one table row per operation with an inline SVG
timeline, 50 rows a page, filtered by a text (operation id or action), an
action and "only effects in doubt"; those that need an operator come first
(anomalies, effects in doubt, re-executions, resumptions) unless sorted by
id. The view lives in the URL's fragment
(``report.html#filter=op-12&page=2&open=op-12``; also ``action=``,
``doubt=1``, ``sort=id``), so a link opens the same view. Every string
from the data reaches the page as text (``textContent``, ``setAttribute``),
never as markup. Once a view is on screen the body
carries ``data-rendered="N rows"``, ``data-page``, ``data-pages`` and
``data-matching``. Nothing is fetched: the SVG namespace is read from the
page's own legend.
"""

from __future__ import annotations

__all__ = ["PAGE_SIZE", "SCRIPT"]

#: Operations a page shows.
PAGE_SIZE = 50

SCRIPT = """
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var ops = data.operations;
  var NS = document.querySelector("#legend svg").namespaceURI;
  var PAGE_SIZE = @PAGE_SIZE@;
  var RANK = {none: 0, provisional: 1, soft_safe: 2, finalized: 3};
  var view = {filter: "", action: "", doubt: false, sort: "attention", page: 1};
  // What needs an operator first: anomalies, effects in doubt, work to redo.
  var ATTENTION = {anomaly: 0, reexecute_from_scratch: 2, resume_from_evidence_boundary: 3,
                   preserve_terminal: 4, reuse_finalized: 5, no_decision: 6};
  var opened = {};
  var $ = function (id) { return document.getElementById(id); };

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function svg(tag, attrs, parent) {
    var node = document.createElementNS(NS, tag);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, String(attrs[k])); });
    if (parent) parent.appendChild(node);
    return node;
  }
  function titled(node, text) {
    svg("title", {}, node).textContent = text;
    return node;
  }
  function actionOf(op) { return op.action || (op.anomaly ? "anomaly" : "no_decision"); }
  function shownId(op) { return op.id === "" ? "(no operation id)" : op.id; }

  ops.forEach(function (op, i) {
    op.hay = (op.id + " " + actionOf(op)).toLowerCase();
    op.rank = (op.in_doubt.length ? 1 : ATTENTION[actionOf(op)]) * ops.length + i;
  });
  var byAttention = ops.slice().sort(function (a, b) { return a.rank - b.rank; });

  // -- the timeline: level over ticks, evidence, gates, finalization, checkpoint --
  var W = 380, H = 64, LEFT = 8, RIGHT = 16, BASE = 48, STEP = 12;
  function timeline(op) {
    var root = svg("svg", {"class": "timeline", width: W, height: H,
                           viewBox: "0 0 " + W + " " + H, role: "img"});
    var ev = op.events, cp = data.checkpoint_tick;
    titled(root, "timeline of " + shownId(op) + ": " + ev.length + " WAL entries");
    for (var r = 0; r < 4; r++) {
      svg("line", {"class": "grid", x1: LEFT, x2: W - RIGHT, y1: BASE - r * STEP,
                   y2: BASE - r * STEP}, root);
    }
    if (!ev.length) {
      svg("text", {x: LEFT, y: H - 3, "class": "axis"}, root).textContent = "no WAL entries";
      return root;
    }
    var lo = ev[0][0], hi = ev[ev.length - 1][0];
    function x(t) {
      var span = W - LEFT - RIGHT;
      return hi === lo ? LEFT + span / 2 : LEFT + (t - lo) / (hi - lo) * span;
    }
    function y(level) { return BASE - (RANK[level] || 0) * STEP; }
    if (cp !== null && cp >= lo) {
      var edge = cp >= hi ? W - RIGHT + 4 : x(cp);
      titled(svg("rect", {"class": "before", x: LEFT - 4, y: 2, width: edge - LEFT + 4,
                          height: BASE + 4}, root),
             "at or before checkpoint tick " + cp + " (the planner's prefix)");
      if (cp < hi) {
        svg("line", {"class": "checkpoint", x1: edge, x2: edge, y1: 2, y2: BASE + 6}, root);
      }
    }
    var d = "M" + x(lo) + " " + y("none"), prev = "none";
    ev.forEach(function (e) {
      d += " L" + x(e[0]) + " " + y(prev) + " L" + x(e[0]) + " " + y(e[4]);
      prev = e[4];
    });
    d += " L" + (W - RIGHT) + " " + y(prev);
    svg("path", {"class": "level", d: d}, root);
    // Entries of one tick are spread a few pixels apart, so each marker shows.
    var same = {}, seen = {};
    ev.forEach(function (e) { same[e[0]] = (same[e[0]] || 0) + 1; });
    ev.forEach(function (e) {
      var k = seen[e[0]] = (seen[e[0]] || 0) + 1;
      var mid = x(e[0]) + (k - 1 - (same[e[0]] - 1) / 2) * 5;
      e.cx = Math.min(Math.max(mid, LEFT - 2), W - RIGHT + 6);
    });
    var order = {gate: 0, escalation: 1, evidence: 2, finalization: 3};
    ev.slice().sort(function (a, b) { return order[a[1]] - order[b[1]]; }).forEach(function (e) {
      var tick = e[0], kind = e[1], cx = e.cx, tip = "tick " + tick + ": " + kind + " " + e[6], m;
      if (kind === "evidence") {
        m = svg("circle", {"class": "evidence", cx: cx, cy: y(e[2]), r: 3.5}, root);
      } else if (kind === "escalation") {
        m = svg("circle", {"class": "escalation", cx: cx, cy: y(e[2]), r: 2}, root);
      } else if (kind === "gate") {
        var gy = y(e[2]);
        m = svg("path", {"class": "gate", d: "M" + cx + " " + (gy - 5) + " l4 5 l-4 5 l-4 -5 z"},
                root);
      } else {
        var fy = e[3] === "finalized" ? y("finalized") : y(e[4]);
        m = svg("rect", {"class": "fin " + e[3], x: cx - 4, y: fy - 4, width: 8, height: 8},
                root);
      }
      titled(m, tip);
    });
    var cpAt = cp === lo ? " (checkpoint)" : "";
    svg("text", {x: LEFT, y: H - 3, "class": "axis"}, root).textContent = "tick " + lo + cpAt;
    if (hi !== lo) {
      svg("text", {x: W - RIGHT, y: H - 3, "class": "axis", "text-anchor": "end"}, root)
        .textContent = String(hi);
    }
    if (cp !== null && cp > lo && cp < hi && x(cp) - LEFT > 90 && W - RIGHT - x(cp) > 50) {
      svg("text", {x: x(cp) + 3, y: H - 3, "class": "axis cp"}, root).textContent = "cp " + cp;
    }
    return root;
  }

  // -- one operation's details -----------------------------------------------------
  function table(headers, rows) {
    var t = el("table", "inner"), head = el("tr");
    headers.forEach(function (h) { head.appendChild(el("th", null, h)); });
    t.appendChild(head);
    rows.forEach(function (row) {
      var tr = el("tr");
      row.forEach(function (cell) { tr.appendChild(el("td", null, cell)); });
      t.appendChild(tr);
    });
    return t;
  }
  function detail(op) {
    var box = el("div", "detail");
    box.appendChild(el("h3", null, "Planned action: " + actionOf(op)));
    var why = el("ul", "why");
    op.why.forEach(function (i) { why.appendChild(el("li", null, data.texts[i])); });
    box.appendChild(why);
    box.appendChild(el("h4", null, "WAL entries (" + op.events.length + ")"));
    box.appendChild(table(["tick", "entry", "proves", "level after", "planner reads it", "detail"],
      op.events.map(function (e) {
        return [e[0], e[1], e[2] || e[3] || "-", e[4],
                e[5] ? "after the checkpoint" : "at or before it", e[6]];
      })));
    box.appendChild(el("h4", null, "Cached evidence (" + op.cached.length + ")"));
    if (op.cached.length) {
      box.appendChild(table(["evidence id", "effect", "status", "outcome", "reused by the plan"],
        op.cached.map(function (c) { return [c[0], c[1], c[2], c[3], c[4] ? "yes" : "no"]; })));
    }
    box.appendChild(el("h4", null, "Effects in doubt (" + op.in_doubt.length + ")"));
    if (op.in_doubt.length) {
      box.appendChild(table(["evidence id", "effect", "attempt", "started (UTC)"],
        op.in_doubt.map(function (i) {
          return [i[0], i[1], i[2], new Date(i[3]).toISOString()];
        })));
      box.appendChild(el("p", "hint", "Each may or may not have happened. Once you know: " +
        "durability resolve DIR EVIDENCE_ID " +
        "(--success JSON | --failure KIND MESSAGE | --not-done)"));
    }
    return box;
  }

  // -- the page of rows ------------------------------------------------------------
  function matching() {
    var f = view.filter.toLowerCase();
    return (view.sort === "id" ? ops : byAttention).filter(function (op) {
      return (!f || op.hay.indexOf(f) !== -1) &&
        (!view.action || actionOf(op) === view.action) &&
        (!view.doubt || op.in_doubt.length > 0);
    });
  }
  function row(op) {
    var tr = el("tr", "op-row");
    tr.dataset.op = op.id;
    tr.tabIndex = 0;
    tr.appendChild(el("td", "opid", shownId(op)));
    var action = el("td");
    action.appendChild(el("span", "badge " + actionOf(op), actionOf(op).replace(/_/g, " ")));
    tr.appendChild(action);
    tr.appendChild(el("td", null, op.checkpoint_level + " \u2192 " + op.level));
    tr.appendChild(el("td", null, op.finalization || "-"));
    tr.appendChild(el("td", null, op.gate_level || "-"));
    var cell = el("td", "tl");
    cell.appendChild(timeline(op));
    tr.appendChild(cell);
    tr.appendChild(el("td", "num", op.cached.length));
    tr.appendChild(el("td", op.in_doubt.length ? "num doubt" : "num", op.in_doubt.length));
    return tr;
  }
  function render() {
    var found = matching();
    var pages = Math.max(1, Math.ceil(found.length / PAGE_SIZE));
    view.page = Math.min(Math.max(1, view.page), pages);
    var start = (view.page - 1) * PAGE_SIZE, shown = found.slice(start, start + PAGE_SIZE);
    var body = $("rows");
    body.textContent = "";
    shown.forEach(function (op) {
      var tr = row(op);
      body.appendChild(tr);
      var more = el("tr", "op-detail");
      var td = el("td");
      td.colSpan = 8;
      more.appendChild(td);
      more.hidden = !opened[op.id];
      if (!more.hidden) td.appendChild(detail(op));
      body.appendChild(more);
      function toggle() {
        opened[op.id] = more.hidden;
        if (more.hidden && !td.firstChild) td.appendChild(detail(op));
        more.hidden = !more.hidden;
        tr.classList.toggle("open", !more.hidden);
      }
      tr.classList.toggle("open", !more.hidden);
      tr.addEventListener("click", toggle);
      tr.addEventListener("keydown", function (ev) { if (ev.key === "Enter") toggle(); });
    });
    if (!shown.length) {
      var none = el("tr"), td0 = el("td", "empty", "no operation matches");
      td0.colSpan = 8;
      none.appendChild(td0);
      body.appendChild(none);
    }
    $("pageinfo").textContent = "page " + view.page + " of " + pages + " \u00b7 " +
      found.length + " of " + ops.length + " operations";
    $("prev").disabled = view.page <= 1;
    $("next").disabled = view.page >= pages;
    var b = document.body.dataset;
    b.rendered = shown.length + " rows";
    b.page = view.page;
    b.pages = pages;
    b.matching = found.length;
  }

  // -- the view in the URL fragment ------------------------------------------------
  function readHash() {
    var p = new URLSearchParams(location.hash.replace(/^#/, ""));
    view.filter = p.get("filter") || "";
    view.action = p.get("action") || "";
    view.doubt = p.get("doubt") === "1";
    view.sort = p.get("sort") === "id" ? "id" : "attention";
    view.page = parseInt(p.get("page") || "1", 10) || 1;
    if (p.get("open") !== null) opened[p.get("open")] = true;
    $("filter").value = view.filter;
    $("action").value = view.action;
    $("doubt").checked = view.doubt;
    $("sort").value = view.sort;
  }
  function writeHash() {
    var p = new URLSearchParams();
    if (view.filter) p.set("filter", view.filter);
    if (view.action) p.set("action", view.action);
    if (view.doubt) p.set("doubt", "1");
    if (view.sort === "id") p.set("sort", "id");
    if (view.page > 1) p.set("page", String(view.page));
    var hash = p.toString();
    try {
      history.replaceState(null, "", hash ? "#" + hash : location.pathname + location.search);
    } catch (err) { /* a page that may not change its URL keeps its view anyway */ }
  }
  function changed(resetPage) {
    if (resetPage) view.page = 1;
    writeHash();
    render();
  }
  $("filter").addEventListener("input", function () {
    view.filter = this.value;
    changed(true);
  });
  $("action").addEventListener("change", function () {
    view.action = this.value;
    changed(true);
  });
  $("doubt").addEventListener("change", function () {
    view.doubt = this.checked;
    changed(true);
  });
  $("sort").addEventListener("change", function () {
    view.sort = this.value;
    changed(true);
  });
  $("prev").addEventListener("click", function () { view.page -= 1; changed(false); });
  $("next").addEventListener("click", function () { view.page += 1; changed(false); });
  window.addEventListener("hashchange", function () { readHash(); render(); });
  readHash();
  render();
})();
""".replace("@PAGE_SIZE@", str(PAGE_SIZE))
