"""deploy/: every query of the Grafana dashboard names a metric that the code exports, and the
Prometheus configuration scrapes the ports the compose file opens."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from bot.metrics import BotMetrics, DeviceMetrics, process_registry

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "stylebot.json"
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and",
                "or", "unless", "offset"}  # fmt: skip
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exported_names(registry: CollectorRegistry) -> set[str]:
    """Every sample name the registry's metrics can have, labelled children or not."""
    return {
        family.name + suffix
        for family in registry.collect()
        for suffix in SUFFIXES.get(family.type, ("",))
    }


def code_exports() -> set[str]:
    worker = process_registry()
    DeviceMetrics(worker)
    return exported_names(BotMetrics().registry) | exported_names(worker)


def metric_names(expr: str) -> set[str]:
    """The metric names in a PromQL expression: identifiers that are not functions, keywords,
    label names (in {...} or after by/without) or durations."""
    bare = re.sub(r'"[^"]*"', "", expr)
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", bare)
    bare = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", bare)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", bare):
        if bare[match.end() :].lstrip().startswith("("):
            continue  # a function
        if match.group() not in PROMQL_WORDS:
            names.add(match.group())
    return names


def panel_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", ())
    ]


def test_the_parser_of_queries_finds_the_metrics():
    expr = 'histogram_quantile(0.95, sum by (le, kind) (rate(a_seconds_bucket{kind="x"}[5m]))) / b'
    assert metric_names(expr) == {"a_seconds_bucket", "b"}


def test_every_panel_asks_for_metrics_the_code_exports():
    exported = code_exports()
    queries = panel_queries()
    assert len(queries) >= 12
    for title, expr in queries:
        names = metric_names(expr)
        assert names, f"{title}: no metric in {expr!r}"
        assert names <= exported | {"up"}, f"{title}: {sorted(names - exported)} not exported"
    asked = set().union(*(metric_names(expr) for _, expr in queries))
    # what a host asks (issue 32): each has a panel
    for wanted in (
        "stylebot_job_wait_seconds_bucket",
        "stylebot_job_duration_seconds_bucket",
        "stylebot_jobs_total",
        "stylebot_queue_length",
        "stylebot_members_waiting",
        "stylebot_refusals_total",
        "stylebot_discord_api_errors_total",
        "stylebot_device_busy_seconds_total",
        "stylebot_batches_total",
        "stylebot_job_steps_total",
        "stylebot_batch_size_jobs",
        "stylebot_device_memory_bytes",
        "stylebot_device_memory_peak_bytes",
        "stylebot_worker_restarts_total",
        "stylebot_ready",
        "up",
        "stylebot_oldest_wait_seconds",
        "stylebot_job_turnaround_seconds_bucket",
        "stylebot_device_memory_reserved_bytes",
        "stylebot_device_memory_total_bytes",
        "stylebot_device_memory_limit_bytes",
    ):
        assert wanted in asked, f"no panel shows {wanted}"


def test_the_dashboard_works_in_any_grafana_and_prometheus():
    """A data-source variable (not a fixed uid), instance and worker filters, rates over
    $__rate_interval, and no fixed job label (a host names its scrape jobs as it likes)."""
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert {"instance", "worker"} <= set(variables)
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            expr = target["expr"]
            assert target["datasource"]["uid"] == "${datasource}"
            assert "job=" not in expr, panel["title"]
            assert '$instance"' in expr or expr.startswith("up{"), (panel["title"], expr)
            for window in re.findall(r"\b(?:rate|irate)\([^\[]*\[([^\]]+)\]", expr):
                assert window == "$__rate_interval", (panel["title"], expr)
            if "stylebot_device_" in expr:
                assert '$worker"' in expr, (panel["title"], expr)


def test_is_it_up_comes_first():
    dashboard = json.loads(DASHBOARD.read_text())
    top = sorted(dashboard["panels"], key=lambda p: (p["gridPos"]["y"], p["gridPos"]["x"]))[:3]
    assert top[0]["type"] == "row" and "up" in top[0]["title"].lower()
    shown = {metric_names(t["expr"]).pop() for panel in top[1:] for t in panel["targets"]}
    assert shown == {"up", "stylebot_ready"}


def test_prometheus_scrapes_the_ports_the_compose_file_opens():
    compose = yaml.safe_load((DEPLOY.parent / "docker-compose.yml").read_text())
    services = compose["services"]
    config = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    # workers by their names in the compose network's DNS: only those whose profile runs
    found = {
        f"{name}:{dns['port']}"
        for job in config["scrape_configs"]
        for dns in job.get("dns_sd_configs", [])
        for name in dns["names"]
    }
    assert "bot:8080" in targets
    workers = 0
    for name, service in services.items():
        port = (service.get("environment") or {}).get("STYLEBOT_METRICS_PORT")
        if port is None:
            continue
        workers += 1
        assert service["environment"]["STYLEBOT_METRICS_HOST"] == "0.0.0.0"
        assert service.get("profiles"), name  # a GPU or CPU worker, as the host has
        assert f"{name}:{port}" in found and f"{name}:{port}" not in targets, name
    assert workers == 3 and {"gpu", "cpu"} <= {
        p for s in services.values() for p in s.get("profiles", [])
    }
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="needs promtool (Debian's prometheus)")
def test_promtool_accepts_the_configuration():
    done = subprocess.run(
        ["promtool", "check", "config", str(DEPLOY / "prometheus/prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
