"""What SREs get: alert rules that promtool accepts and that fire when they should, a dashboard
whose every query names a metric we export, and a /metrics endpoint on loopback."""

import json
import re
import shutil
import subprocess
import urllib.request

from engine.metrics import Metrics
from tests.conftest import ROOT

RULES = ROOT / "configs" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "configs" / "prometheus" / "alerts_test.yml"
DASHBOARD = ROOT / "configs" / "grafana" / "lagg.json"
METRIC = re.compile(r"\blagg_[a-z_]+\b")


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    # `make test` installs promtool (Debian's prometheus package) via `make sysdeps`.
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: run `make sysdeps` (installs Debian's prometheus package)"
    return subprocess.run([promtool, *args], capture_output=True, text=True, cwd=RULES.parent, timeout=60)


def test_alert_rules_are_valid_prometheus_rules():
    result = _promtool("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 13 rules found" in result.stdout


def test_alert_rules_fire_when_they_should_and_not_before():
    result = _promtool("test", "rules", RULE_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_metric_in_rules_and_dashboard_is_exported():
    exported = Metrics().names()
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = set(METRIC.findall(RULES.read_text())) | {m for e in exprs for m in METRIC.findall(e)}
    assert used, "no lagg_ metric referenced at all"
    assert used <= exported, f"referenced but not exported: {sorted(used - exported)}"


def test_dashboard_panels_have_unique_ids_and_queries():
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)) >= 10
    assert all(p["targets"] and all(t["expr"] for t in p["targets"]) for p in dashboard["panels"])


def test_metrics_endpoint_serves_on_loopback():
    metrics = Metrics()
    metrics.lp_up.labels(lp="LP1").set(1)
    metrics.slow_logouts.labels(client="SLOW1").inc(3)
    server = metrics.serve("127.0.0.1", 0)
    try:
        host, port = server.server_address[:2]
        assert host == "127.0.0.1"
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        server.shutdown()
    assert 'lagg_lp_up{lp="LP1"} 1.0' in body
    assert 'lagg_slow_client_logouts_total{client="SLOW1"} 3.0' in body
    assert "# TYPE lagg_no_quote_total counter" in body  # read at scrape time, nothing attached yet
