"""The alert rules (promtool check and test), and every dashboard query and alert sent to a real
Prometheus that scrapes this test's own metrics (Debian's prometheus; skipped without it)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import pytest
import yaml
from prometheus_client import start_http_server

from bot.engine.params import StyleParams
from bot.jobs.refusals import Refusal
from bot.metrics import BotMetrics
from bot.protocol.messages import FailureKind, Job, JobFailed, WorkerStats
from tests.deploy.test_dashboard import DEPLOY, panel_queries

RULES = DEPLOY / "prometheus/alerts.yml"
needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None, reason="needs promtool")
needs_prometheus = pytest.mark.skipif(shutil.which("prometheus") is None, reason="needs prometheus")


@needs_promtool
def test_the_alert_rules_are_valid_and_their_tests_pass():
    for command in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts.test.yml"]):
        done = subprocess.run(
            ["promtool", *command], cwd=RULES.parent, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_the_alerts_cover_what_a_host_must_hear():
    rules = {
        r["alert"]: r["expr"]
        for g in yaml.safe_load(RULES.read_text())["groups"]
        for r in g["rules"]
    }
    assert "up == 0" in rules["StylebotDown"]
    assert 'part="workers"' in rules["StylebotNoWorkerReady"]
    assert "stylebot_jobs_total" in rules["StylebotJobsFailing"]
    assert "stylebot_oldest_wait_seconds" in rules["StylebotLongWait"]
    assert "stylebot_worker_restarts_total" in rules["StylebotWorkerRestarting"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def query(base: str, expr: str) -> dict:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as exc:  # a bad query: 400 with the reason
        return json.loads(exc.read())


def job() -> Job:
    return Job(user_id=1, guild_id=2, content=b"c", styles=(b"s",), params=StyleParams())


@needs_prometheus
def test_every_panel_and_alert_runs_on_a_real_prometheus_and_a_first_failure_counts(tmp_path):
    metrics = BotMetrics()
    metrics.devices.apply("w0", WorkerStats(device="cpu", busy_seconds=1.0, batches=2, job_steps=2))
    metrics.set_ready({"gateway": True, "database": True, "workers": True})
    target = free_port()
    server, _ = start_http_server(target, addr="127.0.0.1", registry=metrics.registry)
    shutil.copy(RULES, tmp_path / "alerts.yml")
    (tmp_path / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": ["alerts.yml"],
                "scrape_configs": [
                    {
                        "job_name": "anything",
                        "static_configs": [{"targets": [f"127.0.0.1:{target}"]}],
                    }
                ],
            }
        )
    )
    port = free_port()
    prometheus = subprocess.Popen(
        ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:

        def scraped(expr: str, timeout: float = 30) -> list:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    found = query(base, expr).get("data", {}).get("result", [])
                except OSError:
                    found = []
                if found:
                    return found
                time.sleep(0.5)
            raise AssertionError(f"nothing for {expr} within {timeout} s")

        zero = 'stylebot_jobs_total{outcome="failed", reason="worker_crashed", kind="still"}'
        assert scraped(zero)[0]["value"][1] == "0"  # there before any failure
        time.sleep(2)  # a few scrapes at 0
        metrics.ended(
            job(), JobFailed(job_id="x", kind=FailureKind.WORKER_CRASHED, message="m"), 3.0
        )
        metrics.refused(Refusal.COOLDOWN)
        first = scraped(f"increase({zero}[1m]) > 0")  # the first failure counts
        assert float(first[0]["value"][1]) > 0
        assert scraped('increase(stylebot_refusals_total{reason="cooldown"}[1m]) > 0')
        for title, expr in panel_queries():
            sent = (
                expr.replace("$__rate_interval", "1m")
                .replace("$instance", ".*")
                .replace("$worker", ".*")
            )
            answer = query(base, sent)
            assert answer["status"] == "success", (title, sent, answer)
        rules = query(base, "ALERTS")  # the rule group loaded and is evaluated
        assert rules["status"] == "success"
        with urllib.request.urlopen(f"{base}/api/v1/rules", timeout=10) as answer:
            groups = json.loads(answer.read())["data"]["groups"]
        assert {r["name"] for g in groups for r in g["rules"]} >= {
            "StylebotDown",
            "StylebotJobsFailing",
        }
        assert all(r["health"] != "err" for g in groups for r in g["rules"])
    finally:
        prometheus.terminate()
        prometheus.wait(30)
        server.shutdown()


def test_a_first_failure_is_counted_from_zero():
    """Without Prometheus: every known label set is in the first scrape, at 0."""
    text = BotMetrics().text().decode()
    assert 'stylebot_jobs_total{kind="still",outcome="failed",reason="worker_crashed"} 0.0' in text
    assert 'stylebot_refusals_total{reason="cooldown"} 0.0' in text
    assert 'stylebot_ready{part="database"} 0.0' in text
    assert (
        'stylebot_discord_api_errors_total{route="PATCH /webhooks/{id}/{token}/messages/@original",status="404"} 0.0'
        in text
    )
