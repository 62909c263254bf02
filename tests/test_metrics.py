"""bot/metrics.py: bounded labels, a worker's totals turned into counters, and text that
prometheus_client's own parser reads back."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from bot.engine.params import StyleParams
from bot.jobs.refusals import Refusal, submit_refusal
from bot.metrics import (
    BotMetrics,
    DeviceMetrics,
    QueueState,
    route_template,
    size_class,
)
from bot.protocol.messages import (
    FailureKind,
    Job,
    JobCancelled,
    JobFailed,
    QueueFull,
    StopReason,
    UserLimitReached,
    WorkerStats,
)
from tests.executor.helpers import job_done


def samples(text: bytes | str) -> dict[tuple, float]:
    text = text.decode() if isinstance(text, bytes) else text
    return {
        (s.name, *sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_routes_name_no_member_server_or_token():
    token = "aW50ZXJhY3Rpb246MTIzNDU2Nzg5OmFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6"
    assert (
        route_template("post", f"/api/v10/interactions/1234567890123/{token}/callback")
        == "POST /interactions/{id}/{token}/callback"
    )
    assert (
        route_template("PATCH", f"/api/v10/webhooks/998877/{token}/messages/@original?wait=1")
        == "PATCH /webhooks/{id}/{token}/messages/@original"
    )
    assert (
        route_template("POST", "/api/v10/channels/5566/messages") == "POST /channels/{id}/messages"
    )
    # whatever a path holds that is not a plain word is taken out
    assert route_template("GET", "/attachments/12/34/My%20Photo.PNG") == (
        "GET /attachments/{id}/{id}/{id}"
    )


def test_size_classes_are_few_and_fixed():
    assert [size_class(s) for s in (64, 256, 257, 512, 1024, 1500, 4096)] == [
        "256", "256", "512", "512", "1024", "2048", "larger",
    ]  # fmt: skip


def test_refusals_of_the_executor():
    assert submit_refusal(QueueFull("full")) is Refusal.QUEUE_FULL
    assert submit_refusal(UserLimitReached("3 jobs")) is Refusal.MEMBER_LIMIT


def test_a_workers_totals_become_counters_and_a_restart_counts_from_zero():
    registry = CollectorRegistry()
    devices = DeviceMetrics(registry)
    labels = (("device", "cuda:0"), ("worker", "w0"))

    def stats(busy: float, batches: int, steps: int) -> WorkerStats:
        return WorkerStats(
            device="cuda:0", busy_seconds=busy, batches=batches, job_steps=steps, batch_size=8,
            memory_bytes=100, memory_peak_bytes=300,
        )  # fmt: skip

    devices.apply("w0", stats(2.0, 10, 50))
    devices.apply("w0", stats(5.0, 20, 120))
    devices.apply("w0", stats(1.0, 3, 9))  # restarted: its totals began again
    from prometheus_client import generate_latest

    found = samples(generate_latest(registry))
    assert found[("stylebot_device_busy_seconds_total", *labels)] == 6.0
    assert found[("stylebot_batches_total", *labels)] == 23
    assert found[("stylebot_job_steps_total", *labels)] == 129
    assert found[("stylebot_batch_size_jobs", *labels)] == 8
    assert found[("stylebot_device_memory_peak_bytes", *labels)] == 300


def test_the_bots_metrics_parse_and_carry_only_bounded_labels():
    metrics = BotMetrics()
    still = Job(user_id=123456789, guild_id=987654321, content=b"", styles=(), params=StyleParams())
    clip = Job(
        user_id=1, guild_id=2, content=b"", styles=(), params=StyleParams(size=1024), cost=24
    )
    metrics.started(still, 1.5)
    metrics.started(clip, 40.0)
    metrics.ended(
        still,
        job_done(still.id, width=512, height=384, steps=160, seconds=3.0),
    )
    metrics.ended(clip, JobFailed(job_id=clip.id, kind=FailureKind.TIMEOUT, message="late"))
    metrics.ended(clip, JobCancelled(job_id=clip.id, reason=StopReason.CANCELLED))
    metrics.refused(Refusal.COOLDOWN)
    metrics.discord_error("PATCH", "/api/v10/webhooks/1/tok/messages/@original", 404)
    metrics.discord_error("POST", "/api/v10/channels/1/messages", None)
    metrics.refresh(QueueState(queued=4, members_waiting=2, running=1, workers_ready=1,
                               worker_restarts=3))  # fmt: skip
    metrics.refresh(QueueState(queued=0, members_waiting=0, running=0, workers_ready=1,
                               worker_restarts=3))  # fmt: skip
    found = samples(metrics.text())
    assert found[("stylebot_job_wait_seconds_count", ("kind", "still"), ("size", "512"))] == 1
    assert found[("stylebot_job_wait_seconds_count", ("kind", "clip"), ("size", "1024"))] == 1
    assert found[("stylebot_job_duration_seconds_sum", ("kind", "still"), ("size", "512"))] == 3
    assert found[("stylebot_optimizer_steps_total", ("kind", "still"))] == 160
    outcome = ("stylebot_jobs_total", ("kind", "clip"))
    assert found[(*outcome, ("outcome", "failed"), ("reason", "timeout"))] == 1
    assert found[(*outcome, ("outcome", "cancelled"), ("reason", "cancelled"))] == 1
    assert found[("stylebot_refusals_total", ("reason", "cooldown"))] == 1
    assert found[("stylebot_worker_restarts_total",)] == 3  # counted once, not at each refresh
    assert found[("stylebot_queue_length",)] == 0
    none = ("stylebot_discord_api_errors_total", ("route", "POST /channels/{id}/messages"))
    assert found[(*none, ("status", "none"))] == 1
    assert "process_start_time_seconds" in {k[0] for k in found}
    values = {v for key in found for _, v in key[1:]}
    assert not any(secret in v for v in values for secret in ("123456789", "987654321", "/tok/"))
