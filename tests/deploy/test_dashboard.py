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
        assert names <= exported, f"{title}: {sorted(names - exported)} not exported"
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
    ):
        assert wanted in asked, f"no panel shows {wanted}"


def test_every_panel_uses_the_provisioned_data_source():
    sources = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    uid = sources["datasources"][0]["uid"]
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == uid, panel["title"]


def test_prometheus_scrapes_the_ports_the_compose_file_opens():
    compose = yaml.safe_load((DEPLOY.parent / "docker-compose.yml").read_text())
    services = compose["services"]
    config = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    assert "bot:8080" in targets
    for name, service in services.items():
        port = (service.get("environment") or {}).get("STYLEBOT_METRICS_PORT")
        if port is not None:
            assert f"{name}:{port}" in targets, name
            assert service["environment"]["STYLEBOT_METRICS_HOST"] == "0.0.0.0"
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
