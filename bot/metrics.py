"""Prometheus metrics (prometheus_client), one registry per process.

The bot: `BotMetrics`, served at the health server's /metrics (bot/health.py): jobs (the wait
before painting and the time painting, by kind and size class; optimiser steps; outcomes), the
queue, refusals by reason, Discord API errors by route, and the devices of its local pool, which
its worker processes report over their pipes (WorkerStats). A `stylebot worker` (Celery): its own
`DeviceMetrics` on its own port (bot/worker/celery_task.py).

Prometheus' conventions: every name starts with `stylebot_`, carries its base unit (`_seconds`,
`_bytes`) and ends in `_total` when it counts; label values come from short fixed lists (kinds,
size classes, outcomes, reasons, route templates) or from the deployment (device and worker
names): never a member's or a server's id. Updates are a few additions on the event loop or on
the worker's reporting thread, never inside the painting loop; a scrape renders the text on a
thread (bot/health.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

from bot.jobs.refusals import Refusal
from bot.protocol.messages import (
    FailureKind,
    JobCancelled,
    JobDone,
    JobFailed,
    StopReason,
)

if TYPE_CHECKING:
    from bot.protocol.messages import Job, Terminal, WorkerStats

# the upper bounds of the size classes, px of the longest side; above the last: "larger"
SIZE_CLASSES = (256, 512, 1024, 2048)
KINDS = ("still", "clip")
READY_PARTS = ("gateway", "database", "workers")  # what /healthz checks, each a stylebot_ready
# the routes the bot calls and the answers that fail them, started at 0 (an open list: others
# appear at their first error)
DISCORD_ROUTES = (
    "POST /interactions/{id}/{token}/callback",
    "PATCH /webhooks/{id}/{token}/messages/@original",
    "POST /webhooks/{id}/{token}",
    "POST /channels/{id}/messages",
    "GET /gateway/bot",
)
DISCORD_FAILURES = ("400", "401", "403", "404", "413", "429", "500", "502", "503", "none")
WAIT_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800)
JOB_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)


def size_class(size: int) -> str:
    """The size label of a job: the smallest class bound its size is within, or "larger"."""
    for bound in SIZE_CLASSES:
        if size <= bound:
            return str(bound)
    return "larger"


def kind_of(job: Job) -> str:
    """ "clip" for a moving picture of more than one frame, else "still"."""
    return "clip" if job.cost > 1 else "still"


_ID = re.compile(r"^\d+$")
_WORD = re.compile(r"^@?[a-z][a-z0-9_-]{0,31}$")  # "messages", "@original"
_VERSION = re.compile(r"^v\d+$")


def route_template(method: str, path: str) -> str:
    """A Discord API path with its ids and tokens taken out ("POST
    /interactions/{id}/{token}/callback"): a bounded label that names no member, server or
    token. Any part that is not a plain lower-case word becomes {id}, or {token} after an
    interaction's or a webhook's id."""
    parts = [p for p in path.split("?", 1)[0].split("/") if p]
    if parts[:1] == ["api"]:
        parts = parts[2:] if len(parts) > 1 and _VERSION.match(parts[1]) else parts[1:]
    shown: list[str] = []
    for part in parts:
        if len(shown) >= 2 and shown[-2] in ("interactions", "webhooks") and shown[-1] == "{id}":
            shown.append("{token}")
        elif _ID.match(part) or not _WORD.match(part):
            shown.append("{id}")
        else:
            shown.append(part)
    return f"{method.upper()} /{'/'.join(shown)}"


class DeviceMetrics:
    """What each worker paints on its device, from its WorkerStats (totals since it started:
    a restarted worker starts again from zero, which counters take as a reset)."""

    def __init__(self, registry: CollectorRegistry):
        labels = ("worker", "device")
        self.busy = Counter(
            "stylebot_device_busy_seconds",
            "Seconds the worker spent stepping jobs (its rate: the share of time it paints).",
            labels,
            registry=registry,
        )
        self.batches = Counter(
            "stylebot_batches",
            "Batched optimiser steps: one VGG-19 pass over the jobs of one shape.",
            labels,
            registry=registry,
        )
        self.job_steps = Counter(
            "stylebot_job_steps",
            "Optimiser steps of jobs (a batch of 5 stepping once: 5). Against "
            "stylebot_batches_total: jobs per batch.",
            labels,
            registry=registry,
        )
        self.batch_size = Gauge(
            "stylebot_batch_size_jobs",
            "The most jobs the worker steps together.",
            labels,
            registry=registry,
        )
        self.memory = Gauge(
            "stylebot_device_memory_bytes",
            "Memory in use by the worker's jobs (CUDA: allocated by torch; CPU: resident size).",
            labels,
            registry=registry,
        )
        self.memory_peak = Gauge(
            "stylebot_device_memory_peak_bytes",
            "The most memory the worker's jobs used since it started.",
            labels,
            registry=registry,
        )
        self.memory_reserved = Gauge(
            "stylebot_device_memory_reserved_bytes",
            "Memory held for the worker (CUDA: reserved by torch's allocator; CPU: as in use).",
            labels,
            registry=registry,
        )
        self.memory_total = Gauge(
            "stylebot_device_memory_total_bytes",
            "The device's memory: the card's (CUDA), the host's (CPU).",
            labels,
            registry=registry,
        )
        self.memory_limit = Gauge(
            "stylebot_device_memory_limit_bytes",
            "The memory the worker's jobs may take, as it plans them (0: no limit).",
            labels,
            registry=registry,
        )
        self._last: dict[str, WorkerStats] = {}

    def apply(self, worker: str, stats: WorkerStats) -> None:
        labels = (worker, stats.device)
        last = self._last.get(worker)
        if last is None or last.device != stats.device or stats.busy_seconds < last.busy_seconds:
            last = None  # a new or restarted worker: its totals count from zero
        self._last[worker] = stats
        self.busy.labels(*labels).inc(stats.busy_seconds - (last.busy_seconds if last else 0))
        self.batches.labels(*labels).inc(max(0, stats.batches - (last.batches if last else 0)))
        self.job_steps.labels(*labels).inc(
            max(0, stats.job_steps - (last.job_steps if last else 0))
        )
        self.batch_size.labels(*labels).set(stats.batch_size)
        self.memory.labels(*labels).set(stats.memory_bytes)
        self.memory_peak.labels(*labels).set(stats.memory_peak_bytes)
        self.memory_reserved.labels(*labels).set(stats.memory_reserved_bytes)
        self.memory_total.labels(*labels).set(stats.memory_total_bytes)
        self.memory_limit.labels(*labels).set(stats.memory_limit_bytes)


@dataclass(frozen=True)
class QueueState:
    """What the dispatcher knows of its queue and workers, read on the event loop at a scrape."""

    queued: int
    members_waiting: int
    running: int
    workers_ready: int
    worker_restarts: int
    oldest_wait: float = 0.0  # seconds the longest-waiting queued job has waited; 0: none waits


def process_registry() -> CollectorRegistry:
    """A registry of one process's metrics, with prometheus_client's process_* metrics (its
    start time shows a restart; its memory and CPU)."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    return registry


class BotMetrics:
    def __init__(self) -> None:
        self.registry = registry = process_registry()
        self.wait = Histogram(
            "stylebot_job_wait_seconds",
            "Seconds from a job's submission until a worker starts painting it.",
            ("kind", "size"),
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self.turnaround = Histogram(
            "stylebot_job_turnaround_seconds",
            "Seconds from a job's submission to its ending, whatever it is (done, failed, "
            "cancelled, in the queue too): what a member waits in all.",
            ("kind", "size", "outcome"),
            buckets=JOB_BUCKETS,
            registry=registry,
        )
        self.duration = Histogram(
            "stylebot_job_duration_seconds",
            "Seconds a finished job painted on its worker, from its pictures to its result.",
            ("kind", "size"),
            buckets=JOB_BUCKETS,
            registry=registry,
        )
        self.steps = Counter(
            "stylebot_optimizer_steps",
            "Optimiser steps of finished jobs (at the final size; a coarse level's count as less).",
            ("kind",),
            registry=registry,
        )
        self.jobs = Counter(
            "stylebot_jobs",
            "Jobs that ended, by outcome (done, failed, cancelled) and its reason.",
            ("kind", "outcome", "reason"),
            registry=registry,
        )
        self.refusals = Counter(
            "stylebot_refusals",
            "Jobs members asked for that did not start, by reason.",
            ("reason",),
            registry=registry,
        )
        self.discord_errors = Counter(
            "stylebot_discord_api_errors",
            "Discord API requests that failed (HTTP status 400 and above, or no answer), by route.",
            ("route", "status"),
            registry=registry,
        )
        self.queued = Gauge(
            "stylebot_queue_length", "Jobs waiting for a worker.", registry=registry
        )
        self.members_waiting = Gauge(
            "stylebot_members_waiting",
            "Members with at least one job waiting for a worker.",
            registry=registry,
        )
        self.running = Gauge("stylebot_jobs_running", "Jobs on a worker now.", registry=registry)
        self.workers_ready = Gauge(
            "stylebot_workers_ready", "Workers able to run jobs.", registry=registry
        )
        self.oldest_wait = Gauge(
            "stylebot_oldest_wait_seconds",
            "Seconds the job waiting longest for a worker has waited (0: none waits).",
            registry=registry,
        )
        self.ready = Gauge(
            "stylebot_ready",
            "1 when the part works (gateway connected, database answering, a worker ready), "
            "else 0: what /healthz checks.",
            ("part",),
            registry=registry,
        )
        self.restarts = Counter(
            "stylebot_worker_restarts",
            "Local worker processes started again after they ended.",
            registry=registry,
        )
        self._restarts_seen = 0
        self.devices = DeviceMetrics(registry)
        self._start_at_zero()

    def _start_at_zero(self) -> None:
        """Every known label set exists from the start, at 0: rate() and increase() then count
        a series' first event (a counter that appears with its first event reads 0 for it)."""
        for kind in KINDS:
            self.steps.labels(kind)
            for size in (*map(str, SIZE_CLASSES), "larger"):
                self.wait.labels(kind, size)
                self.duration.labels(kind, size)
                for outcome in ("done", "failed", "cancelled"):
                    self.turnaround.labels(kind, size, outcome)
            self.jobs.labels(kind, "done", "")
            for failure in FailureKind:
                self.jobs.labels(kind, "failed", failure.value)
            for reason in StopReason:
                self.jobs.labels(kind, "cancelled", reason.value)
        for refusal in Refusal:
            self.refusals.labels(refusal.value)
        for route in DISCORD_ROUTES:
            for status in DISCORD_FAILURES:
                self.discord_errors.labels(route, status)
        for part in READY_PARTS:
            self.ready.labels(part).set(0)

    # --- updates (on the event loop) --------------------------------------------------------

    def started(self, job: Job, waited: float) -> None:
        self.wait.labels(kind_of(job), size_class(job.params.size)).observe(waited)

    def ended(self, job: Job, event: Terminal, since_submitted: float | None = None) -> None:
        kind = kind_of(job)
        if isinstance(event, JobDone):
            outcome, reason = "done", ""
            self.duration.labels(kind, size_class(job.params.size)).observe(event.seconds)
            self.steps.labels(kind).inc(event.steps)
        elif isinstance(event, JobFailed):
            outcome, reason = "failed", event.kind.value
        else:
            assert isinstance(event, JobCancelled)
            outcome, reason = "cancelled", event.reason.value
        self.jobs.labels(kind, outcome, reason).inc()
        if since_submitted is not None:
            self.turnaround.labels(kind, size_class(job.params.size), outcome).observe(
                since_submitted
            )

    def refused(self, reason: Refusal) -> None:
        self.refusals.labels(reason.value).inc()

    def discord_error(self, method: str, path: str, status: int | None) -> None:
        """A failed Discord API request; status None: no answer (a timeout, a reset)."""
        self.discord_errors.labels(route_template(method, path), str(status or "none")).inc()

    def set_ready(self, parts: dict[str, bool]) -> None:
        for part, ok in parts.items():
            self.ready.labels(part).set(1 if ok else 0)

    def refresh(self, state: QueueState) -> None:
        self.oldest_wait.set(state.oldest_wait)
        self.queued.set(state.queued)
        self.members_waiting.set(state.members_waiting)
        self.running.set(state.running)
        self.workers_ready.set(state.workers_ready)
        if state.worker_restarts > self._restarts_seen:
            self.restarts.inc(state.worker_restarts - self._restarts_seen)
            self._restarts_seen = state.worker_restarts

    def text(self) -> bytes:
        """The Prometheus text of everything here (call it off the event loop)."""
        return generate_latest(self.registry)
