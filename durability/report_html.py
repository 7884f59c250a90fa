"""The ``durability report`` page: one self-contained HTML file.

`render_html(report)` returns the whole page: inline CSS, an inline SVG
legend, the report's data as JSON in a ``<script type="application/json">``
block, and the script of ``report_script.py`` that draws the rows and
timelines from it. Nothing is loaded from anywhere (a Content-Security-Policy
forbids it), so the file can be mailed, archived or opened offline. The
summary (directory, checkpoint, counts) is written as plain HTML too, and
is what a browser without JavaScript shows.

The JSON is made safe to sit inside ``<script>``: every ``<``, ``>`` and
``&`` is written as a ``\\u`` escape, so data such as an operation id
``</script><script>alert(1)</script>`` stays data (and the script shows it
as text).
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from typing import Any

from .model import AgreementLevel
from .report import OperationReport, Report, TimelineEvent
from .report_script import PAGE_SIZE, SCRIPT

__all__ = ["PAGE_SIZE", "embed_json", "render_html", "report_json"]

_STYLE = """
:root { --fg: #1d2330; --muted: #687083; --line: #dde1ea; --bg: #f6f7fa; }
* { box-sizing: border-box; }
body { margin: 0; padding: 18px 24px 40px; font: 13px/1.4 system-ui, -apple-system,
  "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: var(--fg); background: #fff; }
h1 { font-size: 20px; margin: 0 0 2px; }
h3 { margin: 4px 0 6px; font-size: 14px; }
h4 { margin: 12px 0 4px; font-size: 12px; color: var(--muted); text-transform: uppercase;
  letter-spacing: .04em; }
.where { color: var(--muted); margin: 0 0 12px; word-break: break-all; }
#summary { display: flex; flex-wrap: wrap; gap: 8px; margin: 0 0 12px; padding: 0; }
#summary div { background: var(--bg); border: 1px solid var(--line); border-radius: 6px;
  padding: 6px 10px; min-width: 96px; }
#summary dt { color: var(--muted); font-size: 11px; }
#summary dd { margin: 0; font-size: 16px; font-weight: 600; }
#controls { display: flex; flex-wrap: wrap; align-items: center; gap: 8px; margin: 8px 0; }
#controls input[type=search] { width: 300px; padding: 5px 8px; border: 1px solid #c3c8d4;
  border-radius: 4px; font: inherit; }
#controls select, #pager button { font: inherit; padding: 4px 8px; }
#pager { display: flex; align-items: center; gap: 8px; margin: 6px 0; }
#pageinfo { color: var(--muted); }
#legend { display: flex; flex-wrap: wrap; gap: 14px; margin: 4px 0 8px; color: var(--muted);
  font-size: 11px; }
#legend span { display: inline-flex; align-items: center; gap: 4px; }
table#ops { border-collapse: collapse; width: 100%; }
#ops th { text-align: left; font-size: 11px; color: var(--muted); font-weight: 600;
  border-bottom: 2px solid var(--line); padding: 4px 8px; }
#ops td { border-bottom: 1px solid var(--line); padding: 3px 8px; vertical-align: middle; }
tr.op-row { cursor: pointer; }
tr.op-row:hover, tr.op-row.open { background: #f1f5ff; }
td.opid { font-family: ui-monospace, "DejaVu Sans Mono", monospace; word-break: break-all;
  max-width: 260px; }
td.num { text-align: right; }
td.doubt { color: #b4231a; font-weight: 700; }
td.empty { color: var(--muted); padding: 16px 8px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px;
  white-space: nowrap; background: #eceef3; }
.badge.reuse_finalized { background: #dcf3e3; color: #11612f; }
.badge.preserve_terminal { background: #ebe4f7; color: #4d2a86; }
.badge.resume_from_evidence_boundary { background: #dceafe; color: #143f85; }
.badge.reexecute_from_scratch { background: #fdebd6; color: #8a4300; }
.badge.anomaly { background: #fbdad7; color: #8f1a10; }
svg.timeline { display: block; }
svg .grid { stroke: #eef0f4; stroke-width: 1; }
svg .before { fill: #eef0f4; }
svg .checkpoint { stroke: #8a93a6; stroke-dasharray: 3 2; stroke-width: 1; }
svg .level { fill: none; stroke: #2d6be0; stroke-width: 2; }
svg .evidence { fill: #2d6be0; stroke: #fff; stroke-width: 1; }
svg .escalation { fill: #fff; stroke: #2d6be0; stroke-width: 1.5; }
svg .gate { fill: #f0a202; stroke: #8a5b00; stroke-width: 1; }
svg .fin { stroke: #fff; stroke-width: 1; fill: #b4231a; }
svg .fin.finalized { fill: #1c8a45; }
svg .axis { font-size: 10px; fill: #8a93a6; }
tr.op-detail > td { background: #fafbfd; padding: 8px 16px 14px; }
ul.why { margin: 0; padding-left: 18px; }
table.inner { border-collapse: collapse; margin: 2px 0; }
table.inner th, table.inner td { border: 1px solid var(--line); padding: 2px 6px;
  text-align: left; font-size: 12px; }
table.inner td:last-child { word-break: break-all; }
.hint { color: var(--muted); font-size: 12px; }
footer { margin-top: 18px; color: var(--muted); font-size: 11px; }
"""

#: The legend; its first SVG is also where the script finds the SVG namespace.
_LEGEND = """<div id="legend" aria-label="legend of the timelines">
<span><svg width="22" height="12"><rect width="22" height="12" fill="#eef0f4"/></svg>
at or before the checkpoint</span>
<span><svg width="30" height="14"><path d="M1 12 L12 12 L12 3 L29 3" fill="none"
 stroke="#2d6be0" stroke-width="2"/></svg>level the WAL proves (bottom: none, then provisional,
 soft_safe, top: finalized)</span>
<span><svg width="10" height="10"><circle cx="5" cy="5" r="3.5" fill="#2d6be0"/></svg>
evidence</span>
<span><svg width="10" height="12"><path d="M5 1 l4 5 l-4 5 l-4 -5 z" fill="#f0a202"/></svg>
gate crossed (at its level)</span>
<span><svg width="20" height="10"><rect width="8" height="8" y="1" fill="#1c8a45"/>
<rect x="10" y="1" width="8" height="8" fill="#b4231a"/></svg>finalized / other outcome</span>
</div>"""

_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'"
)

_HEADERS = (
    "operation",
    "action",
    "level (checkpoint \u2192 now)",
    "finalization",
    "gate",
    "timeline (ticks)",
    "cached",
    "in doubt",
)


# -- the data the page embeds ------------------------------------------------------


def _level(level: AgreementLevel | None) -> str | None:
    return level.value if level is not None else None


def _event_json(e: TimelineEvent) -> list[Any]:
    after = e.after_checkpoint
    return [e.tick, e.kind, _level(e.level), e.outcome, e.level_after.value, after, e.detail]


def _operation_json(op: OperationReport, text: Callable[[str], int]) -> dict[str, Any]:
    events = [_event_json(e) for e in op.events]
    return {
        "id": op.operation_id,
        "action": op.action,
        "anomaly": op.anomaly,
        "level": op.level.value,
        "checkpoint_level": op.checkpoint_level.value,
        "finalization": op.finalization,
        "gate_level": _level(op.gate_level),
        "why": [text(line) for line in op.why],
        "events": events,
        "cached": [
            [c.evidence_id, c.effect, c.status, c.outcome, c.used_by_plan] for c in op.cached
        ],
        "in_doubt": [[d.evidence_id, d.effect, d.attempt, d.created_unix_ms] for d in op.in_doubt],
    }


def report_json(report: Report) -> dict[str, Any]:
    """`report` as JSON-ready data (what the HTML page embeds), compact
    enough for 10,000 operations: events, cached evidence and effects in
    doubt are arrays in the field order of `TimelineEvent`, `CachedEvidence`
    and `DoubtfulEffect` (events: ``[tick, kind, level, outcome,
    level_after, after_checkpoint, detail]``), and an operation's ``why``
    lists indexes into ``texts`` (explanations repeat from one operation to
    the next)."""
    texts: dict[str, int] = {}

    def text(line: str) -> int:
        return texts.setdefault(line, len(texts))

    operations = [_operation_json(op, text) for op in report.operations]
    return {
        "directory": report.directory,
        "checkpoint_tick": report.checkpoint_tick,
        "checkpoint_ticks": list(report.checkpoint_ticks),
        "wal_entries": report.wal_entries,
        "cache_entries": report.cache_entries,
        "repairs": report.repairs,
        "anomalies": list(report.anomalies),
        "unattached_cache_entries": report.unattached_cache_entries,
        "action_counts": report.action_counts,
        "in_doubt": report.in_doubt_count,
        "texts": list(texts),
        "operations": operations,
    }


def embed_json(data: object) -> str:
    """`data` as JSON text that cannot end the ``<script>`` element holding it
    (nor open a comment or character reference): ``<``, ``>`` and ``&``
    become ``\\u`` escapes, which JSON reads back unchanged."""
    text = json.dumps(data, ensure_ascii=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _summary(report: Report) -> list[tuple[str, str]]:
    items = [
        ("operations", f"{len(report.operations)}"),
        ("WAL entries", f"{report.wal_entries}"),
        ("cache entries", f"{report.cache_entries}"),
    ]
    actions = report.action_counts.items()  # anomalies are counted below
    items += [(a.replace("_", " "), f"{n}") for a, n in actions if a != "anomaly"]
    items += [
        ("anomalies", f"{len(report.anomalies)}"),
        ("effects in doubt", f"{report.in_doubt_count}"),
    ]
    torn = [name for name, reason in report.repairs.items() if reason is not None]
    items.append(("torn tails", ", ".join(torn) if torn else "none"))
    return items


def _where(report: Report) -> str:
    ticks = ", ".join(map(str, report.checkpoint_ticks)) or "none"
    if report.checkpoint_tick is None:
        planned = "planned with no checkpoint"
    else:
        planned = f"planned from checkpoint tick {report.checkpoint_tick}"
    return f"{report.directory} \u00b7 {planned} (checkpoints: {ticks})"


def render_html(report: Report) -> str:
    """The whole report page for `report`, as text (UTF-8 when written)."""
    esc = html.escape
    summary = "".join(
        f"<div><dt>{esc(label)}</dt><dd>{esc(value)}</dd></div>"
        for label, value in _summary(report)
    )
    actions = "".join(
        f'<option value="{esc(action)}">{esc(action.replace("_", " "))} ({n})</option>'
        for action, n in report.action_counts.items()
    )
    headers = "".join(f"<th>{esc(h)}</th>" for h in _HEADERS)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{esc(_CSP)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>durability report: {esc(report.directory)}</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>durability report</h1>
<p class="where">{esc(_where(report))}</p>
<dl id="summary">{summary}</dl>
<noscript><p>The operations table and their timelines are drawn by this page's
script; without JavaScript only the counts above show.</p></noscript>
<div id="controls">
<input id="filter" type="search" placeholder="filter: operation id or action"
 aria-label="filter by operation id or action">
<select id="action" aria-label="action"><option value="">every action</option>{actions}</select>
<label><input id="doubt" type="checkbox"> only with effects in doubt</label>
<select id="sort" aria-label="order"><option value="attention">needs attention first</option>
<option value="id">by operation id</option></select>
</div>
{_LEGEND}
<div id="pager"><button id="prev" type="button">&lsaquo; previous</button>
<span id="pageinfo"></span>
<button id="next" type="button">next &rsaquo;</button></div>
<table id="ops"><thead><tr>{headers}</tr></thead><tbody id="rows"></tbody></table>
<footer>Written by <code>durability report</code>; self-contained: no request leaves this
file. Click a row for its explanation, WAL entries, cached evidence and effects in doubt.
</footer>
<script type="application/json" id="report-data">{embed_json(report_json(report))}</script>
<script>{SCRIPT}</script>
</body>
</html>
"""
