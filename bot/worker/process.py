"""The entry of a local pool's worker process: a Batcher over a JobRunner, behind a pair of pipes.

The messages are dataclasses of bot/protocol/messages.py. Parent to worker: Run, Cancel, Stop.
Worker to parent: Ready, Fatal, Emit (an event of the job with that `seq`). A thread reads the
parent's messages while the main thread steps the jobs (up to `batch_size` at once); a job whose
`seq` was cancelled stops at its next step.

The bot's side starts it by name (bot/protocol/entry.py): only the spawned process imports it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import threading

from bot.logs import configure_logging
from bot.protocol.messages import (
    Cancel,
    Emit,
    Event,
    Fatal,
    JobCancelled,
    Painted,
    Ready,
    Run,
    Stop,
    StopReason,
    WorkerSpec,
    WorkerStats,
)
from bot.worker.batcher import Batcher
from bot.worker.runner import JobRunner
from bot.worker.stats import report_every

log = logging.getLogger("stylebot.worker")


def worker_main(spec: WorkerSpec, inbox, outbox) -> None:
    """Process entry point (spawned). Never returns an exception to the parent: it reports."""
    # Ctrl-C in a terminal reaches the whole process group: the parent decides what stops.
    # SIGTERM keeps its default, so that a worker can always be terminated.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    configure_logging(dataclasses.replace(spec.log, who=f"worker {spec.name}"))

    parent = os.getppid()
    try:
        runner = JobRunner(spec.runner)
    except Exception as exc:  # weights missing or broken, bad device: the parent reports it
        outbox.send(Fatal(str(exc) or exc.__class__.__name__))
        return
    outbox.send(Ready(runner.device_name, runner.weights_label, runner.precision_label))
    batcher = Batcher(
        runner, max_jobs=spec.batch_size, memory_budget=runner.memory_budget(), name=spec.name
    )
    cancelled: dict[int, StopReason] = {}  # seq -> why it was asked to stop
    sending = threading.Lock()

    def send(seq: int, event) -> None:
        with sending:
            outbox.send(Emit(seq, event))

    def send_message(message: WorkerStats | Painted) -> None:
        with sending:
            outbox.send(message)

    def listen() -> None:
        while True:
            try:
                message = inbox.recv()
            except (EOFError, OSError):  # the parent is gone
                break
            if isinstance(message, Stop):
                break
            if isinstance(message, Cancel):
                cancelled[message.seq] = message.reason
            elif isinstance(message, Run):
                seq = message.seq
                batcher.add(
                    message.job,
                    emit=lambda event, seq=seq: send(seq, event),
                    finish=lambda event, seq=seq: send(seq, with_reason(event, cancelled.get(seq))),
                    should_cancel=lambda seq=seq: seq in cancelled or os.getppid() != parent,
                    painted=lambda seq=seq: send_message(Painted(seq)),
                )
        batcher.stop()

    threading.Thread(target=listen, name="stylebot-inbox", daemon=True).start()
    stopped = threading.Event()
    report_every(runner.stats, send_message, stopped)
    batcher.run()
    stopped.set()


def with_reason(event: Event, reason: StopReason | None) -> Event:
    """A job's ending, a JobCancelled carrying the reason its Cancel gave (the painting only
    knows that it was asked to stop)."""
    if isinstance(event, JobCancelled) and reason is not None:
        return dataclasses.replace(event, reason=reason)
    return event
