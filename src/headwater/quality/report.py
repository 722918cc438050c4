"""``headwater quality report``: a Rich summary and a self-contained HTML report.

The HTML has no script and no external resource (the plots are inline SVG, the style is inline), so
it opens offline and can be mailed as one file. Plots: volume per dataset with its expected band,
null rates, drift (PSI) with its threshold, the quality score with the 0.95/0.90 lines, quarantine
counts by rule; then the checks that did not pass and the schema history.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

from headwater.config import Settings
from headwater.orchestration.run_store import RunStore
from headwater.quality.contracts import RAW_DATASETS
from headwater.quality.validate import CRITICAL_THRESHOLD, DIMENSIONS, WARN_THRESHOLD

CONTEXT_DAYS = 30  # trends show at least this many days up to the last one


@dataclass
class Report:
    first: date
    last: date
    trend_days: list[date]
    scores: dict[date, dict] = field(default_factory=dict)  # day -> {score, level, dimensions}
    checks: dict[date, list[dict]] = field(default_factory=dict)
    metrics: dict[tuple[str, str], dict[date, float]] = field(default_factory=dict)  # (dataset, metric)
    quarantine: dict[str, int] = field(default_factory=dict)  # rule -> rows in [first, last]
    quarantine_by_day: dict[date, int] = field(default_factory=dict)
    schema_changes: list[dict] = field(default_factory=list)

    def check_series(self, name: str) -> dict[date, dict]:
        return {d: c for d, cs in self.checks.items() for c in cs if c["check_name"] == name}


def latest_day(settings: Settings) -> date | None:
    store = RunStore(settings.run_store)
    try:
        rows = store.query("SELECT max(logical_date) AS d FROM quality_scores")
    finally:
        store.close()
    return date.fromisoformat(rows[0]["d"]) if rows and rows[0]["d"] else None


def build_report(settings: Settings, first: date, last: date) -> Report:
    from headwater.quality.quarantine import quarantine_summary
    from headwater.quality.store import schema_history

    start = min(first, last - timedelta(days=CONTEXT_DAYS - 1))
    days = [start + timedelta(k) for k in range((last - start).days + 1)]
    rep = Report(first, last, days)
    lo, hi = start.isoformat(), last.isoformat()
    store = RunStore(settings.run_store)
    try:
        for r in store.query(
            "SELECT logical_date, score, level, dimensions FROM quality_scores WHERE logical_date BETWEEN ? AND ?"
            " ORDER BY recorded_at",
            (lo, hi),
        ):
            rep.scores[date.fromisoformat(r["logical_date"])] = {
                "score": r["score"], "level": r["level"], "dimensions": json.loads(r["dimensions"])
            }
        latest_runs = store.query(
            "SELECT logical_date, run_id FROM quality_scores WHERE logical_date BETWEEN ? AND ? ORDER BY recorded_at",
            (lo, hi),
        )
        run_of = {r["logical_date"]: r["run_id"] for r in latest_runs}
        for ds, run_id in run_of.items():
            rows = store.query("SELECT * FROM quality_checks WHERE run_id = ? ORDER BY check_name", (run_id,))
            rep.checks[date.fromisoformat(ds)] = [dict(r) for r in rows]
        for r in store.query(
            "SELECT dataset, metric, logical_date, value FROM quality_metrics WHERE logical_date BETWEEN ? AND ?"
            " ORDER BY recorded_at",
            (lo, hi),
        ):
            rep.metrics.setdefault((r["dataset"], r["metric"]), {})[date.fromisoformat(r["logical_date"])] = r["value"]
        rep.schema_changes = [c.__dict__ for c in schema_history(store)]
    finally:
        store.close()
    for row in quarantine_summary(settings, None, first, last):
        rep.quarantine_by_day[row["date"]] = rep.quarantine_by_day.get(row["date"], 0) + row["rows"]
        for rule, n in row["by_rule"].items():
            key = f"{row['dataset']} {rule}"
            rep.quarantine[key] = rep.quarantine.get(key, 0) + n
    return rep


# --- console -------------------------------------------------------------------------------------------
_LEVEL_STYLE = {"ok": "green", "warning": "yellow", "critical": "red"}


def render_console(rep: Report, console: Console) -> None:
    table = Table(title=f"data quality {rep.first} .. {rep.last}", title_justify="left")
    for col in ("date", "score", "level", *DIMENSIONS, "quarantined", "not ok"):
        table.add_column(col, justify="right" if col not in ("date", "level", "not ok") else "left")
    d = rep.first
    while d <= rep.last:
        s = rep.scores.get(d)
        if s is None:
            table.add_row(str(d), "-", "[dim]no run[/]", *[""] * len(DIMENSIONS), "", "")
        else:
            dims = [("-" if s["dimensions"].get(k) is None else f"{s['dimensions'][k]:.2f}") for k in DIMENSIONS]
            bad = [c["check_name"] for c in rep.checks.get(d, []) if c["status"] in ("warn", "critical")]
            style = _LEVEL_STYLE.get(s["level"], "")
            table.add_row(
                str(d), f"{s['score']:.3f}", f"[{style}]{s['level']}[/]", *dims,
                f"{rep.quarantine_by_day.get(d, 0):,}", ", ".join(bad[:4]) + (" ..." if len(bad) > 4 else ""),
            )
        d += timedelta(days=1)
    console.print(table)
    if rep.quarantine:
        top = sorted(rep.quarantine.items(), key=lambda kv: -kv[1])[:8]
        console.print("quarantined by rule: " + ", ".join(f"{k} {v:,}" for k, v in top))


# --- SVG -------------------------------------------------------------------------------------------------
W, H, PAD_L, PAD_R, PAD_T, PAD_B = 760, 220, 56, 16, 14, 34
PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563", "#ca8a04"]


def _fmt(v: float) -> str:
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def line_chart(
    title: str,
    days: list[date],
    series: dict[str, dict[date, float]],
    band: dict[date, tuple[float | None, float | None]] | None = None,
    hlines: dict[str, float] | None = None,
    y_min: float | None = 0.0,
) -> str:
    """An inline SVG line chart over ``days`` (gaps where a day has no value), with an optional band."""
    values = [v for s in series.values() for v in s.values() if v is not None]
    values += [v for lo_hi in (band or {}).values() for v in lo_hi if v is not None]
    values += list((hlines or {}).values())
    if not values:
        return f'<figure><figcaption>{html.escape(title)}</figcaption><p class="empty">no data yet</p></figure>'
    lo = min(values) if y_min is None else min(y_min, min(values))
    hi = max(values)
    hi = hi if hi > lo else lo + 1
    n = max(len(days) - 1, 1)

    def x(i: int) -> float:
        return PAD_L + (W - PAD_L - PAD_R) * i / n

    def y(v: float) -> float:
        return PAD_T + (H - PAD_T - PAD_B) * (1 - (v - lo) / (hi - lo))

    parts = [f'<svg viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{html.escape(title)}">']
    for k in range(5):  # grid and y labels
        v = lo + (hi - lo) * k / 4
        parts.append(f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{y(v):.1f}" y2="{y(v):.1f}" class="grid"/>')
        parts.append(f'<text x="{PAD_L - 6}" y="{y(v) + 4:.1f}" class="ylab">{_fmt(v)}</text>')
    step = max(1, len(days) // 8)
    for i in range(0, len(days), step):
        parts.append(f'<text x="{x(i):.1f}" y="{H - 12}" class="xlab">{days[i].strftime("%m-%d")}</text>')
    if band:
        upper, lower = [], []
        for i, d in enumerate(days):
            b = band.get(d)
            if b and b[0] is not None and b[1] is not None:
                upper.append(f"{x(i):.1f},{y(min(b[1], hi)):.1f}")
                lower.append(f"{x(i):.1f},{y(max(b[0], lo)):.1f}")
        if upper:
            parts.append(f'<polygon points="{" ".join(upper + lower[::-1])}" class="band"><title>expected</title>'
                         "</polygon>")
    for label, v in (hlines or {}).items():
        parts.append(f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{y(v):.1f}" y2="{y(v):.1f}" class="hline"/>')
        parts.append(f'<text x="{W - PAD_R - 4}" y="{y(v) - 4:.1f}" class="hlab">{html.escape(label)}</text>')
    for k, (label, points) in enumerate(series.items()):
        color = PALETTE[k % len(PALETTE)]
        segs, cur = [], []
        for i, d in enumerate(days):
            v = points.get(d)
            if v is None:
                if cur:
                    segs.append(cur)
                cur = []
            else:
                cur.append((x(i), y(v), d, v))
        if cur:
            segs.append(cur)
        for seg in segs:
            pts = " ".join(f"{px:.1f},{py:.1f}" for px, py, _, _ in seg)
            parts.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2"/>')
            for px, py, d, v in seg:
                parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="2.5" fill="{color}">'
                             f"<title>{html.escape(label)} {d}: {_fmt(v)}</title></circle>")
    parts.append("</svg>")
    legend = "".join(
        f'<span class="key"><i style="background:{PALETTE[k % len(PALETTE)]}"></i>{html.escape(lbl)}</span>'
        for k, lbl in enumerate(series)
    )
    return f"<figure><figcaption>{html.escape(title)}</figcaption>{''.join(parts)}<div>{legend}</div></figure>"


def bar_chart(title: str, counts: dict[str, int]) -> str:
    if not counts:
        return f'<figure><figcaption>{html.escape(title)}</figcaption><p class="empty">nothing quarantined</p></figure>'
    items = sorted(counts.items(), key=lambda kv: -kv[1])[:20]
    row_h, label_w = 22, 300
    h = row_h * len(items) + 10
    top = max(v for _, v in items)
    parts = [f'<svg viewBox="0 0 {W} {h}" width="{W}" height="{h}" role="img" aria-label="{html.escape(title)}">']
    for i, (label, v) in enumerate(items):
        bw = (W - label_w - 80) * v / top
        yy = 5 + i * row_h
        parts.append(f'<text x="{label_w - 6}" y="{yy + 15}" class="ylab">{html.escape(label)}</text>')
        parts.append(f'<rect x="{label_w}" y="{yy + 3}" width="{bw:.1f}" height="{row_h - 6}" fill="{PALETTE[1]}">'
                     f"<title>{html.escape(label)}: {v:,}</title></rect>")
        parts.append(f'<text x="{label_w + bw + 6:.1f}" y="{yy + 15}" class="vlab">{v:,}</text>')
    parts.append("</svg>")
    return f"<figure><figcaption>{html.escape(title)}</figcaption>{''.join(parts)}</figure>"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:820px;color:#111}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:4px}
figure{margin:12px 0}figcaption{font-weight:600;margin-bottom:4px}
.grid{stroke:#e5e7eb}.ylab{font-size:11px;text-anchor:end;fill:#555}.xlab{font-size:11px;text-anchor:middle;fill:#555}
.vlab{font-size:11px;fill:#333}.band{fill:#93c5fd;opacity:.35}.hline{stroke:#9ca3af;stroke-dasharray:4 3}
.hlab{font-size:10px;text-anchor:end;fill:#6b7280}.key{margin-right:14px;font-size:12px}
.key i{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
table{border-collapse:collapse;font-size:13px;width:100%}
td,th{border-bottom:1px solid #eee;padding:4px 6px;text-align:left}
.ok{color:#15803d}.warning,.warn{color:#a16207}.critical{color:#b91c1c}.empty{color:#888}
.tiles{display:flex;gap:12px}.tile{border:1px solid #ddd;border-radius:6px;padding:8px 14px}
.tile b{display:block;font-size:20px}
"""


def render_html(rep: Report) -> str:
    days = rep.trend_days
    e = html.escape
    out = [f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>Headwater data quality {rep.first} .. "
           f"{rep.last}</title><style>{_CSS}</style></head><body>",
           f"<h1>Headwater data quality: {rep.first} .. {rep.last}</h1>"]
    window = [d for d in days if rep.first <= d <= rep.last]
    scored = [rep.scores[d]["score"] for d in window if d in rep.scores]
    levels = [rep.scores[d]["level"] for d in window if d in rep.scores]
    tiles = [
        ("days with a run", f"{len(scored)} / {len(window)}"),
        ("lowest score", f"{min(scored):.3f}" if scored else "-"),
        ("warning / critical days", f"{levels.count('warning')} / {levels.count('critical')}"),
        ("rows quarantined", f"{sum(rep.quarantine_by_day.values()):,}"),
    ]
    out.append('<div class="tiles">' + "".join(f'<div class="tile">{e(k)}<b>{e(v)}</b></div>' for k, v in tiles)
               + "</div>")
    score_series = {"score": {d: s["score"] for d, s in rep.scores.items()}}
    out.append("<h2>Quality score</h2>")
    out.append(line_chart("quality score per run", days, score_series,
                          hlines={f"warning {WARN_THRESHOLD}": WARN_THRESHOLD,
                                  f"critical {CRITICAL_THRESHOLD}": CRITICAL_THRESHOLD}, y_min=None))
    out.append("<h2>Volume</h2>")
    for ds in RAW_DATASETS:
        checks = rep.check_series(f"volume:{ds}")
        band = {d: (c["expected_low"], c["expected_high"]) for d, c in checks.items() if c["expected_low"] is not None}
        out.append(line_chart(f"{ds}: rows in, with the expected band", days,
                              {"rows in": rep.metrics.get((ds, "rows_in"), {})}, band=band))
    out.append("<h2>Null rates (before the gate)</h2>")
    for ds in RAW_DATASETS:
        series = {m.split(":", 1)[1]: v for (d, m), v in rep.metrics.items() if d == ds and m.startswith("null_rate:")}
        out.append(line_chart(f"{ds}: share of null values per column", days, series))
    out.append("<h2>Drift</h2>")
    psi = {d: c["observed"] for d, c in rep.check_series("drift:orders.total_amount").items()
           if c["observed"] is not None}
    out.append(line_chart("PSI of order amounts vs the trailing 14 days", days, {"PSI": psi},
                          hlines={"warn 0.10": 0.10, "critical 0.25": 0.25}))
    out.append("<h2>Quarantine</h2>")
    per_day = {d: float(rep.quarantine_by_day.get(d, 0)) for d in days if d in rep.scores}
    out.append(line_chart("rows quarantined per day (all datasets)", days, {"quarantined": per_day}))
    out.append(bar_chart(f"quarantined rows by dataset and rule, {rep.first} .. {rep.last}", rep.quarantine))
    out.append("<h2>Checks that did not pass</h2>")
    rows = [(d, c) for d in window for c in rep.checks.get(d, []) if c["status"] in ("warn", "critical")]
    if rows:
        out.append("<table><tr><th>date</th><th>check</th><th>status</th><th>observed</th><th>expected</th>"
                   "<th>detail</th></tr>")
        for d, c in rows:
            exp = "" if c["expected_low"] is None else f"{_fmt(c['expected_low'])} .. {_fmt(c['expected_high'] or 0)}"
            obs = "" if c["observed"] is None else _fmt(c["observed"])
            out.append(f"<tr><td>{d}</td><td>{e(c['check_name'])}</td><td class={c['status']}>{c['status']}</td>"
                       f"<td>{obs}</td><td>{exp}</td><td>{e(c['detail'] or '')}</td></tr>")
        out.append("</table>")
    else:
        out.append('<p class="ok">every check passed in the window</p>')
    out.append("<h2>Schema history</h2>")
    if rep.schema_changes:
        out.append("<table><tr><th>first seen</th><th>dataset</th><th>change</th><th>status</th><th>decision</th></tr>")
        for c in rep.schema_changes:
            decision = f"{c['decided_by']} at {(c['decided_at'] or '')[:19]}: {c['reason']}" if c["decided_by"] else ""
            out.append(f"<tr><td>{e((c['first_seen_at'] or '')[:19])}</td><td>{e(c['dataset'])}</td>"
                       f"<td>{e(c['change_id'])}</td><td class={c['status']}>{e(c['status'])}</td>"
                       f"<td>{e(decision)}</td></tr>")
        out.append("</table>")
    else:
        out.append('<p class="empty">no schema changes recorded</p>')
    out.append("</body></html>")
    return "\n".join(out)


def write_html(rep: Report, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(render_html(rep), encoding="utf-8")
    tmp.replace(path)
    return path
