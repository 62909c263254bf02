"""The local pool's worker process: a JobRunner behind a pair of pipes.

Messages are the small dataclasses below, one per kind. Parent to worker: Run, Stop. Worker to
parent: Ready, Fatal, Emit (an event of the job with that `seq`). Cancellation is a shared
integer: when it equals the running job's `seq`, the engine stops at its next step.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
from dataclasses import dataclass
from typing import Any

from bot.executor.runner import RunnerSpec
from bot.logs import LogConfig, configure_logging

log = logging.getLogger("stylebot.worker")


@dataclass(frozen=True)
class WorkerSpec:
    name: str
    runner: RunnerSpec
    log: LogConfig = LogConfig()  # the bot's own logging: level and format


@dataclass(frozen=True)
class Run:
    seq: int
    job: dict[str, Any]  # Job.to_dict()


@dataclass(frozen=True)
class Stop:
    pass


@dataclass(frozen=True)
class Ready:
    device: str
    weights: str


@dataclass(frozen=True)
class Fatal:
    message: str


@dataclass(frozen=True)
class Emit:
    seq: int
    event: dict[str, Any]  # Event.to_dict()


ToWorker = Run | Stop
FromWorker = Ready | Fatal | Emit


def worker_main(spec: WorkerSpec, inbox, outbox, cancel_seq) -> None:
    """Process entry point (spawned). Never returns an exception to the parent: it reports."""
    # Ctrl-C in a terminal reaches the whole process group: the parent decides what stops.
    # SIGTERM keeps its default, so that a worker can always be terminated.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    configure_logging(dataclasses.replace(spec.log, who=f"worker {spec.name}"))
    from bot.executor.runner import JobRunner

    parent = os.getppid()
    try:
        runner = JobRunner(spec.runner)
    except Exception as exc:  # weights missing or broken, bad device: the parent reports it
        outbox.send(Fatal(str(exc) or exc.__class__.__name__))
        return
    outbox.send(Ready(runner.device_name, runner.weights_label))
    while True:
        try:
            message = inbox.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if isinstance(message, Stop):
            return
        if isinstance(message, Run):
            _run(runner, message, outbox, cancel_seq, parent)


def _run(runner, message: Run, outbox, cancel_seq, parent: int) -> None:
    from bot.executor.protocol import Job

    def should_cancel() -> bool:
        return cancel_seq.value == message.seq or os.getppid() != parent

    def emit(event) -> None:
        outbox.send(Emit(message.seq, event.to_dict()))

    emit(runner.run(Job.from_dict(message.job), emit, should_cancel))
