"""The quality report after real runs: the Rich summary, and an HTML file that parses, holds its plots
as inline SVG and loads nothing from outside; plus `quality check` and the alert of a failed check."""

from __future__ import annotations

import json
import sqlite3
from datetime import date
from html.parser import HTMLParser

import pytest
from typer.testing import CliRunner

from headwater.cli import app
from headwater.errors import DataError
from headwater.monitoring.alerts import LogChannel
from headwater.pipelines import daily
from headwater.quality.validate import validate_day


class Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend(attrs)

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture
def ran(world, settings, store):
    w = world.customer(1).customer(2)
    for day in ("2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"):
        w.order(1, f"{day} 10:00:00", "10.00").order(2, f"{day} 11:00:00", "5.50")
        w.ticket(day, f"T{day}", 1, f"{day}T09:00:00Z")
    w.order(2, "2024-01-03 12:00:00", "-1.00")  # quarantined: range:total_amount
    w.write("2024-01-01", "2024-01-04")
    daily.run_range(settings, date(2024, 1, 1), date(2024, 1, 4), store)
    return settings


def test_report_html_parses_with_inline_plots_and_no_external_resources(ran, tmp_path):
    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["quality", "report", "--last", "4", "--out", str(out), "--home", str(ran.home)])
    assert result.exit_code == 0, result.output
    assert "data quality 2024-01-01 .. 2024-01-04" in result.output
    page = Collect()
    page.feed(out.read_text())
    assert page.tags.count("svg") >= 9  # score, 3 volumes, 3 null-rate, drift, quarantine trend + bars
    assert "script" not in page.tags and "link" not in page.tags
    assert not [v for k, v in page.attrs if k in ("src", "href") and v]
    text = " ".join(page.text)
    assert "Quality score" in text and "Volume" in text and "Drift" in text and "Quarantine" in text
    assert "orders range:total_amount" in text  # the quarantine bar of the bad order
    assert page.tags.count("polyline") >= 4  # real lines were drawn (score, volumes, null rates)


def test_quality_check_command_and_scores_recorded(ran, store):
    rows = store.query("SELECT logical_date, level FROM quality_scores ORDER BY logical_date")
    assert [r["logical_date"] for r in rows] == ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]
    result = CliRunner().invoke(app, ["quality", "check", "--date", "2024-01-03", "--home", str(ran.home)])
    assert result.exit_code == 0, result.output
    assert "score 1.000 (ok)" in result.output
    checks = {r["check_name"]: r["status"] for r in store.query(
        "SELECT check_name, status FROM quality_checks WHERE run_id = 'manual__2024-01-03'")}
    assert checks["revenue_reconciles"] == checks["orders_reconcile"] == checks["metrics_monotonic"] == "ok"
    assert checks["contract:customer_metrics"] == checks["contract:daily_sales"] == "ok"
    assert checks["gate:orders"] == "skipped"  # 1 bad order in 3 is too few rows to judge a share


def test_failed_reconciliation_fails_the_day_and_alerts(ran, store, tmp_path):
    con = sqlite3.connect(ran.source_db)  # an order arrives late in the source, after the day was loaded
    con.execute("INSERT INTO orders VALUES (99, 1, '2024-01-04 20:00:00', 7.25, 'completed', '2024-01-04 20:00:00')")
    con.commit()
    con.close()
    alerts = tmp_path / "alerts.jsonl"
    with pytest.raises(DataError, match="revenue_reconciles") as err:
        validate_day(ran, store, date(2024, 1, 4), "check-1", channels=[LogChannel(alerts)])
    assert "off by 7.25" in str(err.value)
    alert = json.loads(alerts.read_text().splitlines()[-1])
    assert alert["kind"] == "quality_score" and alert["severity"] == "critical"
    assert any(c["name"] == "revenue_reconciles" for c in alert["details"]["checks"])


def _warehouse_sql(settings, sql: str) -> None:
    from headwater.storage.warehouse import DuckDBWarehouse

    wh = DuckDBWarehouse(settings.warehouse)
    try:
        wh.con.execute(sql)
    finally:
        wh.close()


def test_negative_clv_and_a_decreasing_order_count_fail_the_output_checks(ran, store):
    _warehouse_sql(ran, "UPDATE customer_metrics SET estimated_clv = -1 WHERE customer_id = 1 "
                        "AND snapshot_date = DATE '2024-01-04'")
    _warehouse_sql(ran, "UPDATE customer_metrics SET order_count = order_count + 5 WHERE customer_id = 2 "
                        "AND snapshot_date = DATE '2024-01-03'")
    outcome = validate_day(ran, store, date(2024, 1, 4), "check-2", raise_on_failure=False, channels=[])
    failed = {c.name: c.detail for c in outcome.failed_output_checks}
    assert set(failed) == {"contract:customer_metrics", "metrics_monotonic"}
    assert "range:estimated_clv 1" in failed["contract:customer_metrics"]
    assert "fewer_orders 1" in failed["metrics_monotonic"]
    assert outcome.level == "critical"
