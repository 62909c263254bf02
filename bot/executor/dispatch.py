"""The dispatcher: admission, the fair queue, queue positions and time limits, above any backend.

A job is released to the backend only when the backend has a free slot, so the queue (and the
positions members see) stays here whatever runs the jobs: the local process pool, or another
backend behind the same `Backend` interface.

All state lives on the event loop's thread; backends call `on_event`, `on_capacity` and
`on_unavailable` there.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.engine.params import ImageLimits
from bot.executor.base import Backend, Executor, JobHandle, Listener
from bot.executor.scheduler import FairQueue
from bot.logs import LogConfig
from bot.metrics import BotMetrics, QueueState
from bot.protocol.messages import (
    BackendBusy,
    Event,
    ExecutorClosed,
    FailureKind,
    Job,
    JobCancelled,
    JobFailed,
    JobQueued,
    JobStarted,
    QueueFull,
    StopReason,
    Terminal,
    UserLimitReached,
    WorkerStats,
    timed_out,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ExecutorConfig:
    devices: tuple[str, ...] | None = None  # None: every CUDA GPU, else one CPU (or MPS) device
    workers_per_device: int = 1
    max_queued: int = 50  # jobs waiting (not running) across all users
    per_user_limit: int = 3  # queued plus running jobs per user
    time_limit: float = 900.0  # seconds a job may run
    cancel_grace: float = 5.0  # seconds a worker has to confirm a stop before it is killed
    weights: str | None = None  # as for load_vgg19; None: the bundled original VGG-19
    precision: str = "auto"  # the workers' (auto: measured on a CPU, kept in precision_cache)
    precision_cache: str | None = None
    cache_size: int = 16  # style targets kept per worker
    start_timeout: float = 300.0  # seconds a worker may take to load VGG-19
    threads_per_worker: int | None = None  # CPU threads per worker; None: cores / CPU workers
    batch_size: int | None = None  # jobs one worker steps together; None: 16 on CUDA, 1 elsewhere
    shape_buckets: bool = False  # workers that batch paint stills at their bucket (buckets.py)
    memory_limit: int | None = (
        None  # bytes one worker's jobs may use; None: 80 % of free GPU memory
    )
    image_limits: ImageLimits = field(default_factory=ImageLimits)  # what workers decode
    log: LogConfig = field(
        default_factory=LogConfig
    )  # how workers log (the bot's level and format)
    start_method: str = "spawn"  # how local workers start: spawn or forkserver (bot/config.py)


class Cancellable(Protocol):
    def cancel(self) -> None: ...


CallLater = Callable[..., Cancellable]  # (delay, callback, *args), as loop.call_later


class _JobState:
    def __init__(self, job: Job, handle: JobHandle):
        self.job = job
        self.handle = handle
        self.released = False
        self.position: int | None = None
        self.no_worker = False  # as last told: no worker was online
        self.stop_reason: StopReason | None = None
        self.timer: Cancellable | None = None
        self.submitted = time.monotonic()
        self.waited: float | None = None  # seconds until a worker started it


class Dispatcher(Executor, Listener):
    def __init__(
        self,
        backend: Backend,
        config: ExecutorConfig,
        metrics: BotMetrics | None = None,
        *,
        call_later: CallLater | None = None,
    ):
        self.backend = backend
        # the one clock of a job's time limit: the loop's, unless a test drives its own
        self._call_later = call_later
        self.config = config
        self._metrics = metrics or BotMetrics()  # what it counts for /metrics: the bot's
        self._queue: FairQueue[_JobState] = FairQueue()
        self._jobs: dict[str, _JobState] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False

    @property
    def queue_length(self) -> int:
        return len(self._queue)

    @property
    def running(self) -> int:
        return sum(1 for s in self._jobs.values() if s.released)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.backend.start(self)

    # --- the member's side ------------------------------------------------------------------

    async def submit(self, job: Job) -> JobHandle:
        if self._closing or self._loop is None:
            raise ExecutorClosed("the bot is shutting down and takes no new jobs")
        if (reason := self.backend.unavailable()) is not None:
            raise BackendBusy(reason)
        mine = self.jobs_of(job.user_id)
        if mine >= self.config.per_user_limit:
            raise UserLimitReached(
                f"you already have {mine} job(s) queued or running (the limit is {self.config.per_user_limit}); "
                "wait for one to finish or cancel one"
            )
        if len(self._queue) >= self.config.max_queued:
            raise QueueFull(
                f"the queue is full ({self.config.max_queued} jobs waiting); try again in a few minutes"
            )
        state = _JobState(job, JobHandle(job, self))
        self._jobs[job.id] = state
        self._queue.push(job.user_id, state, job.cost)
        self._announce_positions()
        self._pump()
        return state.handle

    async def cancel(self, job_id: str) -> bool:
        state = self._jobs.get(job_id)
        if state is None:
            return False
        if not state.released:
            self._queue.remove(state.job.user_id, state)
            self._finish(state, JobCancelled(job_id=job_id))
            self._announce_positions()
        else:
            self._stop(state, StopReason.CANCELLED)
        return True

    async def forget(self, job_id: str) -> None:
        await self.backend.forget(job_id)

    def job_ids(self) -> list[str]:
        """The jobs queued or running here, oldest first."""
        return list(self._jobs)

    def jobs_of(self, user_id: int) -> int:
        return sum(1 for s in self._jobs.values() if s.job.user_id == user_id)

    def handle(self, job_id: str) -> JobHandle | None:
        """The handle of a job this dispatcher knows (queued or running), by id."""
        state = self._jobs.get(job_id)
        return state.handle if state else None

    async def reattach(
        self, job: Job, *, submitted_at: float | None = None, started: bool = False
    ) -> JobHandle | None:
        """Follow a job that an earlier bot process released, if the backend still runs it.
        `submitted_at` (the wall clock's seconds, as its row keeps them): its turnaround counts
        from then, not from now; `started`: a worker had started it, so it is not waiting (its
        wait was counted by the process that saw it start)."""
        if job.id in self._jobs:
            return self._jobs[job.id].handle
        if not await self.backend.reattach(job.id):
            return None
        state = _JobState(job, JobHandle(job, self))
        if submitted_at is not None:
            state.submitted -= max(0.0, time.time() - submitted_at)
        if started:
            state.waited = 0.0  # not waiting: out of the oldest wait, no second wait observed
        state.released = True
        self._jobs[job.id] = state
        self._queue.mark_running(job.user_id, job.cost)
        return state.handle

    async def shutdown(self, *, graceful: bool = True, timeout: float = 30.0) -> None:
        """Stop taking jobs; cancel queued ones; let running ones finish (graceful, up to
        `timeout` seconds), then stop the rest; stop the backend. Safe to call twice."""
        self._closing = True
        for state in self._queue.drain():
            self._finish(state, JobCancelled(job_id=state.job.id, reason=StopReason.SHUTDOWN))
        running = [s for s in self._jobs.values() if s.released]
        if running and graceful:
            await asyncio.wait(
                [asyncio.ensure_future(s.handle.result()) for s in running], timeout=timeout
            )
        still = [s for s in self._jobs.values() if s.released]
        for state in still:
            self._stop(state, StopReason.SHUTDOWN)
        if still:
            await asyncio.wait(
                [asyncio.ensure_future(s.handle.result()) for s in still],
                timeout=self.config.cancel_grace + 2,
            )
        await self.backend.close()

    # --- the backend's side -----------------------------------------------------------------

    def on_event(self, job_id: str, event: Event) -> None:
        state = self._jobs.get(job_id)
        if state is None:
            return
        if not event.terminal:
            if isinstance(event, JobStarted) and self._loop is not None:
                if state.waited is None:
                    state.waited = time.monotonic() - state.submitted
                    self._metrics.started(state.job, state.waited)
                if state.timer is not None:
                    state.timer.cancel()
                state.timer = self._timer(
                    self._time_limit(state.job), self._stop, state, StopReason.TIMEOUT
                )
            state.handle.deliver(event)
            return
        if isinstance(event, JobCancelled) and event.reason == StopReason.TIMEOUT:
            event = timed_out(job_id, self._time_limit(state.job))
        self._finish(state, event)  # type: ignore[arg-type]

    def on_capacity(self) -> None:
        self._pump()

    def on_stats(self, worker: str, stats: WorkerStats) -> None:
        self._metrics.devices.apply(worker, stats)

    def queue_state(self) -> QueueState:
        """The queue and the workers now, for the metrics (read on the event loop)."""
        return QueueState(
            queued=len(self._queue),
            members_waiting=self._queue.users_waiting,
            running=self.running,
            workers_ready=self.backend.workers_ready(),
            worker_restarts=self.backend.worker_restarts(),
            oldest_wait=max(
                (time.monotonic() - s.submitted for s in self._jobs.values() if s.waited is None),
                default=0.0,
            ),
        )

    def on_unavailable(self, message: str) -> None:
        if self._closing:
            return
        for state in self._queue.drain():
            self._finish(
                state, JobFailed(job_id=state.job.id, kind=FailureKind.INTERNAL, message=message)
            )

    # --- inside -----------------------------------------------------------------------------

    def _time_limit(self, job: Job) -> float:
        return job.limit_within(self.config.time_limit)

    def _pump(self) -> None:
        """Release queued jobs while the backend has free slots, fairly across members."""
        if self._closing or self._loop is None:
            return
        while len(self._queue) and self.backend.free_slots() > 0:
            state = self._queue.pop()
            assert state is not None
            state.released, state.position = True, None
            # the time limit counts from JobStarted (a worker may hold a job back until memory
            # allows); until then this backstop, for a job whose start is never reported
            state.timer = self._timer(
                2 * self._time_limit(state.job), self._stop, state, StopReason.TIMEOUT
            )
            self.backend.run(state.job)
        self._announce_positions()

    def _timer(self, delay: float, callback: Callable[..., None], *args: Any) -> Cancellable:
        assert self._loop is not None
        return (self._call_later or self._loop.call_later)(delay, callback, *args)

    def _stop(self, state: _JobState, reason: StopReason) -> None:
        if state.handle.done or state.stop_reason is not None:
            return
        state.stop_reason = reason
        self.backend.stop(state.job.id, reason)

    def _finish(self, state: _JobState, event: Terminal) -> None:
        if state.timer is not None:
            state.timer.cancel()
        if state.released:
            self._queue.finished(state.job.user_id, state.job.cost)
        self._jobs.pop(state.job.id, None)
        self._metrics.ended(state.job, event, time.monotonic() - state.submitted)
        state.handle.deliver(event)
        self._pump()

    def _announce_positions(self) -> None:
        """Tell each waiting job its position, and whether any worker is online, when either
        changed since it was last told."""
        no_worker = self.backend.workers_ready() == 0
        for position, state in enumerate(self._queue.in_order(), start=1):
            if (state.position, state.no_worker) != (position, no_worker):
                state.position, state.no_worker = position, no_worker
                state.handle.deliver(
                    JobQueued(job_id=state.job.id, position=position, no_worker=no_worker)
                )
