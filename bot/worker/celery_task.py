"""The worker side: the `stylebot.stylize` task, an adapter around JobRunner.

`stylebot worker` runs one Celery worker per GPU: with a batch of one, prefork with one process
that runs jobs; with more, task threads that feed one Batcher. The process that runs jobs loads
VGG-19 once, at its start (worker_process_init, or worker_init for threads), keeps it on the
task's base class (`StylizeTask.process`), and only then announces itself in Redis, so that the
bot releases jobs only to workers that can take them.

A task carries references, never images. It reads the images from Redis, runs the job, stores
the result image and the terminal event in Redis, and publishes every event on one channel.
A redelivered task whose job already ended only publishes that ending again.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from typing import Any

import redis
from celery import Task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_init, worker_process_init
from prometheus_client import MetricsHandler

from bot.engine.params import InvalidParams
from bot.metrics import DeviceMetrics, process_registry
from bot.protocol import celery_keys as keys
from bot.protocol.celery_app import make_celery
from bot.protocol.celery_config import TASK_NAME, CeleryConfig
from bot.protocol.messages import (
    Event,
    FailureKind,
    Job,
    JobCancelled,
    JobDone,
    JobFailed,
    JobStarted,
    RunnerSpec,
    StopReason,
    TaskMessage,
    Terminal,
    dumps,
    event_from_json_data,
    timed_out,
)
from bot.worker.batcher import Batcher
from bot.worker.runner import JobRunner
from bot.worker.stats import report_every

log = logging.getLogger("stylebot.worker")

CANCEL_CHECK_INTERVAL = 0.2  # seconds between reads of the cancel flag while a job runs
TERMINAL_STORE_PATIENCE = 300.0  # seconds to keep trying to store an ending while Redis is down


@dataclass(frozen=True)
class WorkerIdentity:
    name: str
    spec: RunnerSpec
    config: CeleryConfig
    batch_size: int = 1  # > 1: task threads hand their jobs to one in-process Batcher
    # serve the device's Prometheus metrics on this socket, bound and listening since the worker
    # started (bot/cli/worker.py; bot/metrics.py); None: no metrics
    metrics_listener: socket.socket | None = None


class WorkerProcess:
    """What the process that runs jobs holds: its runner and its Redis connection."""

    def __init__(self, identity: WorkerIdentity):
        self.identity = identity
        self.redis = redis.Redis.from_url(identity.config.redis_url)
        self.runner = JobRunner(identity.spec)
        self.batcher = None
        if identity.batch_size > 1:
            self.batcher = Batcher(
                self.runner,
                max_jobs=identity.batch_size,
                memory_budget=self.runner.memory_budget(),
                name=identity.name,
            )
            threading.Thread(target=self.batcher.run, name="batcher", daemon=True).start()
        self._presence = threading.Thread(target=self._announce, name="presence", daemon=True)
        self._presence.start()
        if identity.metrics_listener is not None:
            self._serve_metrics(identity.metrics_listener)

    def _serve_metrics(self, listener: socket.socket) -> None:
        """The device's metrics on their own port, the same names a local pool reports through
        the bot, refreshed every STATS_INTERVAL seconds from the runner's stats (in the process
        that paints: the prefork child, or this one with a batcher), served on the socket the
        worker has held since it started."""
        registry = process_registry()
        devices = DeviceMetrics(registry)
        name = self.identity.name
        server = ThreadingHTTPServer(
            listener.getsockname()[:2], MetricsHandler.factory(registry), bind_and_activate=False
        )
        server.socket.close()  # the one it made unbound: it serves the listener instead
        server.socket = listener  # bound and listening already
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
        report_every(self.runner.stats, lambda stats: devices.apply(name, stats), threading.Event())
        host, port = listener.getsockname()[:2]
        log.info("metrics on http://%s:%d/metrics", host, port)

    def run(self, job: Job, emit, should_cancel, timeout_error) -> Terminal:
        """The job alone in this thread, or through the Batcher with the other task threads'."""
        if self.batcher is None:
            return self.runner.run(job, emit, should_cancel, reraise=(timeout_error,))
        ended = threading.Event()
        endings: list[Terminal] = []

        def finish(event: Terminal) -> None:
            endings.append(event)
            ended.set()

        self.batcher.add(job, emit=emit, finish=finish, should_cancel=should_cancel)
        ended.wait()
        return endings[0]

    def _announce(self) -> None:
        value = json.dumps(
            {
                "slots": self.identity.batch_size,
                "device": self.runner.device_name,
                "weights": self.runner.weights_label,
            }
        )
        while True:
            try:
                self.redis.set(
                    keys.worker_key(self.identity.config.queue, self.identity.name),
                    value,
                    ex=keys.WORKER_TTL,
                )
            except Exception as exc:  # Redis away for a while: announce again when it is back
                log.warning("could not announce this worker in Redis: %s", exc)
            time.sleep(keys.WORKER_REFRESH)


class StylizeTask(Task):
    """The task's base class: holds the process's resources, made once at the process's start."""

    process: WorkerProcess | None = None


def make_worker_app(identity: WorkerIdentity):
    """The Celery app of `stylebot worker`, with the task and the per-process start-up."""
    app = make_celery(identity.config)
    # prefork (batch of one): the child process loads the model; threads: the worker itself
    start_signal = worker_process_init if identity.batch_size == 1 else worker_init

    @start_signal.connect(weak=False)
    def _load(**_: Any) -> None:
        process = StylizeTask.process = WorkerProcess(identity)
        runner = process.runner
        log.info(
            "ready: %s, weights %s, precision %s",
            runner.device_name, runner.weights_label, runner.precision_label,
        )  # fmt: skip

    @app.task(name=TASK_NAME, bind=True, base=StylizeTask)
    def stylize(self: StylizeTask, message: dict[str, Any]) -> dict[str, Any]:
        assert self.process is not None, "the worker process did not start"
        task = TaskMessage.from_dict(message)
        ending = run_task(self.process, task, timeout_error=SoftTimeLimitExceeded)
        return {"job_id": task.job_id, "type": ending.type}

    return app


def run_task(
    process: WorkerProcess, message: TaskMessage, *, timeout_error: type[BaseException]
) -> Terminal:
    """One delivery of a job; returns its terminal event (already stored and published).
    Every Redis key it touches is derived from the job id, which must be one the bot makes: a
    message from whoever can write to the broker names no key of its own."""
    r = process.redis
    job_id = message.job_id
    keys.check_job_id(job_id)
    stored = r.hget(keys.job_key(job_id), "terminal")
    if stored is not None:  # a redelivery of a job that ended: tell the bot again, run nothing
        r.publish(keys.EVENTS, stored)
        return _from_record(stored)
    inputs = keys.input_keys(job_id, message.styles)
    job_or_ending = _take(process, message, inputs)
    if not isinstance(job_or_ending, Job):
        return _finish(process, job_or_ending, inputs)
    job = job_or_ending
    watch = JobWatch(process, job)
    if process.batcher is None:  # it paints now; a batcher reports the start when it admits it
        _publish(
            process,
            JobStarted(
                job_id=job_id, worker=process.identity.name, device=process.runner.device_name
            ),
        )
    try:
        ending = process.run(job, watch.emit, watch.should_cancel, timeout_error)
    except timeout_error:
        watch.stop_reason = watch.stop_reason or StopReason.TIMEOUT
        ending = JobCancelled(job_id=job_id)
    return _finish(process, watch.ending(ending), inputs)


def _take(process: WorkerProcess, message: TaskMessage, inputs: list[str]) -> Job | Terminal:
    """The job with its images, marked running; or the ending of a job that must not run: it
    stopped its worker too often, it was cancelled before it started, its images expired."""
    r, job_id = process.redis, message.job_id
    record = keys.job_key(job_id)
    attempts = int(r.hincrby(record, "attempts", 1))
    r.expire(record, int(process.identity.config.blob_ttl))
    limit = process.identity.config.max_attempts
    if attempts > limit:
        return JobFailed(
            job_id=job_id,
            kind=FailureKind.WORKER_CRASHED,
            message=f"the job stopped its worker {limit} times, so it was not tried again; "
            "try a smaller size or other pictures",
        )
    if (reason := r.get(keys.cancel_key(job_id))) is not None:
        return JobCancelled(job_id=job_id, reason=StopReason(_text(reason)))
    images = [image for image in r.mget(inputs) if isinstance(image, bytes)]
    if len(images) != len(inputs):
        return JobFailed(
            job_id=job_id,
            kind=FailureKind.INTERNAL,
            message="the job's pictures expired before a worker could take it; try again",
        )
    try:
        job = message.job(images[0], tuple(images[1:]))
    except InvalidParams as exc:  # the bot is a newer version than this worker
        return JobFailed(job_id=job_id, kind=FailureKind.BAD_INPUT, message=str(exc))
    r.hset(record, mapping={"state": "running", "worker": process.identity.name})
    return job


class JobWatch:
    """A running job's time limit (from when it starts painting) and its cancel flag in Redis,
    read at most every CANCEL_CHECK_INTERVAL seconds."""

    def __init__(self, process: WorkerProcess, job: Job):
        self.process, self.job_id = process, job.id
        self.limit = job.limit_within(process.identity.config.time_limit)
        self.deadline = time.monotonic() + self.limit
        self.stop_reason: StopReason | None = None
        self._next_check = 0.0

    def emit(self, event: Event) -> None:
        if isinstance(event, JobStarted):  # the time limit counts from here
            self.deadline = time.monotonic() + self.limit
        _publish(self.process, event)

    def should_cancel(self) -> bool:
        now = time.monotonic()
        if now >= self.deadline:
            self.stop_reason = self.stop_reason or StopReason.TIMEOUT
            return True
        if now < self._next_check:
            return False
        self._next_check = now + CANCEL_CHECK_INTERVAL
        try:
            value = self.process.redis.get(keys.cancel_key(self.job_id))
        except Exception:  # Redis away: keep painting; the ending is stored once it is back
            return False
        if value is not None:
            self.stop_reason = self.stop_reason or StopReason(_text(value))
            return True
        return False

    def ending(self, ending: Terminal) -> Terminal:
        """A cancelled ending says why it stopped: past this worker's own time limit (a timeout
        in its words), or the reason the bot's flag gave (a time limit of the bot's included:
        the bot words that one, with its own limit)."""
        if not isinstance(ending, JobCancelled) or self.stop_reason is None:
            return ending
        if self.stop_reason == StopReason.TIMEOUT and time.monotonic() >= self.deadline:
            return timed_out(self.job_id, self.limit)
        return JobCancelled(job_id=self.job_id, reason=self.stop_reason)


def _publish(process: WorkerProcess, event: Event) -> None:
    """Progress is best effort: a lost preview never stops a job."""
    try:
        process.redis.publish(keys.EVENTS, event.to_json())
    except Exception as exc:
        log.warning("could not publish an event of job %s: %s", event.job_id, exc)


def _finish(process: WorkerProcess, ending: Terminal, inputs: list[str]) -> Terminal:
    """Store the ending (result image by reference), then publish it. Storing is retried while
    Redis is away, for TERMINAL_STORE_PATIENCE seconds: this is what the bot reads back."""
    job_id = ending.job_id
    ttl = int(process.identity.config.blob_ttl)
    record = ending.to_dict()
    if isinstance(ending, JobDone):
        record["image"] = b""
        record["image_key"] = keys.result_key(job_id)
    text = dumps(record)
    give_up = time.monotonic() + TERMINAL_STORE_PATIENCE
    while True:
        try:
            pipe = process.redis.pipeline()
            if isinstance(ending, JobDone):
                pipe.set(keys.result_key(job_id), ending.image, ex=ttl)
            pipe.hset(keys.job_key(job_id), mapping={"state": "ended", "terminal": text})
            pipe.expire(keys.job_key(job_id), ttl)
            pipe.delete(*inputs)  # the bot keeps its own copy of the images for Retry
            pipe.publish(keys.EVENTS, text)
            pipe.execute()
            break
        except Exception as exc:
            if time.monotonic() > give_up:
                raise
            log.warning("could not store the end of job %s (%s); trying again", job_id, exc)
            time.sleep(1.0)
    log.info("job %s ended: %s", job_id, ending.type)
    return ending


def _from_record(text: bytes | str) -> Terminal:
    data = json.loads(text)
    data.pop("image_key", None)
    return event_from_json_data(data)  # type: ignore[return-value]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
